/**
 * The connection-wide zlib contexts for SPDY/3 name/value header blocks: one deflate stream for
 * everything this side sends and one inflate stream for everything the peer sends, both primed
 * with the SPDY/3 dictionary, each block ended with Z_SYNC_FLUSH (SPDY draft 3, 2.6.10.1).
 *
 * Because the contexts carry state from block to block, blocks must pass through them in exactly
 * the order they appear on the wire. Each context runs one block at a time, in call order; the
 * session calls them from its ordered frame queues.
 */
import zlib from 'node:zlib';
import { SPDY3_DICTIONARY } from './dictionary.js';
import {
  DEFAULT_MAX_HEADERS,
  GoAwayStatus,
  SpdyProtocolError,
  decodeHeaderBlock,
  encodeHeaderBlock,
} from './frames.js';

/** Largest decompressed header block accepted from the peer, by default. */
export const DEFAULT_MAX_HEADER_BLOCK_SIZE = 256 * 1024;

interface Job {
  chunks: Buffer[];
  size: number;
  resolve: (out: Buffer) => void;
  reject: (err: Error) => void;
}

/** Runs blocks through one zlib stream strictly one after another and collects each output. */
class OrderedZlib {
  private tail: Promise<unknown> = Promise.resolve();
  private job: Job | undefined;
  private failure: Error | undefined;

  constructor(
    private readonly z: zlib.Deflate | zlib.Inflate,
    private readonly maxOutput: number,
    private readonly describe: (err: Error) => Error,
  ) {
    z.on('data', (chunk: Buffer) => {
      this.onData(chunk);
    });
    z.on('error', (err: Error) => {
      this.fail(this.describe(err));
    });
    z.on('close', () => {
      this.fail(new Error('zlib context closed'));
    });
  }

  run(input: Buffer): Promise<Buffer> {
    const result = this.tail.then(() => this.process(input));
    this.tail = result.catch(() => undefined);
    return result;
  }

  close(): void {
    this.fail(new Error('zlib context closed'));
  }

  private process(input: Buffer): Promise<Buffer> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise<Buffer>((resolve, reject) => {
      const job: Job = { chunks: [], size: 0, resolve, reject };
      this.job = job;
      // Every write is flushed with Z_SYNC_FLUSH (set at creation), so when its callback runs the
      // whole output for this block has been pushed: already emitted as 'data', or still buffered
      // in the readable side, which read() drains (emitting 'data') below.
      this.z.write(input, (err) => {
        if (this.job !== job) return;
        if (err) {
          this.fail(this.describe(err));
          return;
        }
        while (this.job === job && this.z.read() !== null) {
          // read() emits 'data' in flowing mode; onData collects it.
        }
        if (this.job !== job) return;
        this.job = undefined;
        job.resolve(Buffer.concat(job.chunks, job.size));
      });
    });
  }

  private onData(chunk: Buffer): void {
    const job = this.job;
    if (!job) return;
    job.size += chunk.length;
    if (job.size > this.maxOutput) {
      this.fail(new SpdyProtocolError(`SPDY header block decompresses to more than ${this.maxOutput} bytes`));
      return;
    }
    job.chunks.push(chunk);
  }

  private fail(err: Error): void {
    if (!this.failure) {
      this.failure = err;
      this.z.destroy();
    }
    const job = this.job;
    this.job = undefined;
    job?.reject(this.failure);
  }
}

export interface HeaderCompressorOptions {
  /** zlib level; header blocks are small, so the default is fine. */
  level?: number;
}

/** Compresses outgoing header blocks on one shared deflate context. */
export class HeaderCompressor {
  private readonly ctx: OrderedZlib;

  constructor(opts: HeaderCompressorOptions = {}) {
    const z = zlib.createDeflate({
      dictionary: SPDY3_DICTIONARY,
      flush: zlib.constants.Z_SYNC_FLUSH,
      // A 2 KiB window is plenty for header blocks and keeps per-connection memory small.
      windowBits: 11,
      memLevel: 4,
      level: opts.level ?? zlib.constants.Z_DEFAULT_COMPRESSION,
    });
    this.ctx = new OrderedZlib(
      z,
      Number.MAX_SAFE_INTEGER,
      (err) =>
        new SpdyProtocolError(`header compression failed: ${err.message}`, GoAwayStatus.INTERNAL_ERROR),
    );
  }

  /** Encodes and compresses `headers` (names lowercased). Resolves in call order. */
  compress(headers: Readonly<Record<string, string>>): Promise<Buffer> {
    let raw: Buffer;
    try {
      raw = encodeHeaderBlock(headers);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    return this.ctx.run(raw);
  }

  /** Compresses an already encoded (uncompressed) block. */
  compressRaw(block: Buffer): Promise<Buffer> {
    return this.ctx.run(block);
  }

  close(): void {
    this.ctx.close();
  }
}

export interface HeaderDecompressorOptions {
  /** Largest decompressed block; default 256 KiB. */
  maxHeaderBlockSize?: number;
  /** Most name/value pairs per block; default 1024. */
  maxHeaders?: number;
}

/** Decompresses incoming header blocks on one shared inflate context. */
export class HeaderDecompressor {
  private readonly ctx: OrderedZlib;
  private readonly maxHeaders: number;

  constructor(opts: HeaderDecompressorOptions = {}) {
    this.maxHeaders = opts.maxHeaders ?? DEFAULT_MAX_HEADERS;
    const z = zlib.createInflate({ dictionary: SPDY3_DICTIONARY, flush: zlib.constants.Z_SYNC_FLUSH });
    this.ctx = new OrderedZlib(
      z,
      opts.maxHeaderBlockSize ?? DEFAULT_MAX_HEADER_BLOCK_SIZE,
      (err) =>
        new SpdyProtocolError(`corrupt SPDY header block: ${err.message}`, GoAwayStatus.PROTOCOL_ERROR),
    );
  }

  /**
   * Decompresses and decodes one block. Every block the peer sends must go through here, in wire
   * order, even for streams that are about to be refused, or the context falls out of step.
   * A zero-length block (no zlib bytes at all) is read as no headers.
   */
  async decompress(block: Buffer): Promise<Record<string, string>> {
    if (block.length === 0) return Object.create(null) as Record<string, string>;
    const raw = await this.ctx.run(block);
    return decodeHeaderBlock(raw, { maxHeaders: this.maxHeaders });
  }

  close(): void {
    this.ctx.close();
  }
}
