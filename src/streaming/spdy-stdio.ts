/**
 * remotecommand over SPDY (notes/cri-streaming.md §4): the client opens one stream per channel,
 * each named by its `streamType` header. The session starts once every stream the cached request
 * calls for is there (or fails after the creation timeout), and ends by closing the output
 * streams, writing the outcome on the error stream, and sending GOAWAY.
 */
import type { SpdySession, SpdyStream } from './spdy/session.js';
import { ResizeDecoder } from './resize-decoder.js';
import { encodeOutcome } from './status.js';
import { ResizeHub, type StdioChannels } from './stdio.js';

const STREAM_TYPES = new Set(['error', 'stdin', 'stdout', 'stderr', 'resize']);

export interface ExpectedStreams {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  resize: boolean;
}

/** Which streams client-go opens for a request, as kubelet counts them. */
export function expectedStreams(
  req: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean },
  version: number,
): ExpectedStreams {
  return {
    stdin: req.stdin,
    stdout: req.stdout,
    stderr: req.stderr,
    resize: req.tty && version >= 3,
  };
}

export function spdyStdio(
  session: SpdySession,
  expected: ExpectedStreams,
  version: number,
  timeoutMs: number,
): Promise<StdioChannels> {
  const streams = new Map<string, SpdyStream>();
  const wanted = [
    'error',
    ...Object.entries(expected)
      .filter(([, v]) => v)
      .map(([k]) => k),
  ];
  const gone = session.whenClosed();
  return new Promise<StdioChannels>((resolve, reject) => {
    const timer = setTimeout(() => {
      const missing = wanted.filter((w) => !streams.has(w));
      fail(new Error(`the client did not open the ${missing.join(', ')} stream(s) within ${timeoutMs} ms`));
    }, timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      session.off('stream', onStream);
      reject(err);
    };
    void gone.then(() => {
      fail(new Error('the client closed the connection before opening its streams'));
    });
    const onStream = (stream: SpdyStream): void => {
      const type = (stream.headers.streamtype ?? '').toLowerCase();
      if (!STREAM_TYPES.has(type) || streams.has(type)) {
        stream.reset();
        return;
      }
      stream.accept();
      stream.on('error', () => undefined);
      streams.set(type, stream);
      if (wanted.every((w) => streams.has(w))) {
        clearTimeout(timer);
        session.off('stream', onStream);
        resolve(channelsOf(session, streams, expected, version, gone));
      }
    };
    session.on('stream', onStream);
  });
}

function channelsOf(
  session: SpdySession,
  streams: Map<string, SpdyStream>,
  expected: ExpectedStreams,
  version: number,
  gone: Promise<void>,
): StdioChannels {
  const error = streams.get('error');
  const resize = streams.get('resize');
  const stdin = expected.stdin ? streams.get('stdin') : undefined;
  const stdout = expected.stdout ? streams.get('stdout') : undefined;
  const stderr = expected.stderr ? streams.get('stderr') : undefined;
  // Streams the client opened but the request did not ask for get nothing and are closed.
  for (const [type, s] of streams) {
    if (type === 'error' || type === 'resize' || s === stdin || s === stdout || s === stderr) continue;
    s.resume();
    s.end();
  }
  const hub = resize !== undefined ? new ResizeHub() : undefined;
  if (resize !== undefined) {
    const decoder = new ResizeDecoder();
    resize.on('data', (chunk: Buffer) => {
      try {
        for (const size of decoder.push(chunk)) hub?.push(size);
      } catch {
        // A client sending garbage as sizes loses its resize stream, not its session.
        resize.reset();
      }
    });
  }
  error?.resume();
  let finishing: Promise<void> | undefined;
  return {
    stdin,
    stdout,
    stderr,
    gone,
    resize: hub,
    finish(outcome) {
      finishing ??= (async () => {
        for (const s of [stdout, stderr]) if (s && !s.writableEnded) s.end();
        if (error !== undefined && !error.writableEnded) {
          const body = encodeOutcome(outcome, version);
          await new Promise<void>((resolve) => {
            error.end(body ?? Buffer.alloc(0), () => {
              resolve();
            });
          });
        }
        await session.goAway();
      })().catch(() => {
        session.destroy();
      });
      return finishing;
    },
  };
}
