/**
 * remotecommand over WebSocket: channels 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize, all
 * present from the start. The server first sends an empty message on the lowest channel it will
 * write (the "ready" signal clients wait for).
 */
import { PassThrough, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import { ResizeDecoder } from './resize-decoder.js';
import { encodeOutcome } from './status.js';
import { ResizeHub, type StdioChannels } from './stdio.js';
import { ChannelCodec } from './ws-channels.js';

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const ERROR = 3;
const RESIZE = 4;

export function wsStdio(
  ws: WebSocket,
  protocol: string,
  /** The remotecommand version of `protocol` (protocols.ts remotecommandVersion). */
  version: number,
  req: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean },
  onProtocolError: (err: Error) => void,
): StdioChannels {
  const codec = ChannelCodec.forProtocol(protocol);
  const stdin = req.stdin ? new PassThrough() : undefined;
  const hub = req.tty ? new ResizeHub() : undefined;
  const resize = new ResizeDecoder();
  const gone = new Promise<void>((resolve) => {
    ws.once('close', () => {
      stdin?.end();
      resolve();
    });
  });
  ws.on('error', () => undefined);
  ws.on('message', (raw, isBinary) => {
    try {
      const msg = codec.decode(raw, isBinary);
      if (msg.close === true) {
        if (msg.channel === STDIN) stdin?.end();
        return;
      }
      if (msg.channel === STDIN) {
        if (stdin !== undefined && !stdin.writableEnded) stdin.write(msg.data);
      } else if (msg.channel === RESIZE) {
        for (const size of resize.push(msg.data)) hub?.push(size);
      }
      // Anything a client sends on an output channel is ignored, as kubelet does.
    } catch (err) {
      onProtocolError(err instanceof Error ? err : new Error(String(err)));
      ws.close(1002, 'protocol error');
    }
  });
  const writer = (channel: number): Writable =>
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        if (ws.readyState !== ws.OPEN) {
          cb();
          return;
        }
        codec.send(ws, channel, chunk, (err) => {
          cb(err);
        });
      },
    });
  const stdout = req.stdout ? writer(STDOUT) : undefined;
  const stderr = req.stderr ? writer(STDERR) : undefined;
  stdout?.on('error', () => undefined);
  stderr?.on('error', () => undefined);
  codec.send(ws, stdout ? STDOUT : stderr ? STDERR : ERROR, Buffer.alloc(0));
  let finishing: Promise<void> | undefined;
  return {
    stdin,
    stdout,
    stderr,
    gone,
    resize: hub,
    finish(outcome) {
      finishing ??= new Promise<void>((resolve) => {
        if (ws.readyState !== ws.OPEN) {
          resolve();
          return;
        }
        const body = encodeOutcome(outcome, version);
        const close = (): void => {
          ws.close(1000);
          resolve();
        };
        if (body === undefined) close();
        else codec.send(ws, ERROR, body, close);
      });
      return finishing;
    },
  };
}
