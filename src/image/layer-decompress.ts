/**
 * Which compression a layer blob uses, and a streaming decompressor for it.
 * - gzip: node:zlib.
 * - zstd: fzstd (pure JS), because Node 20's zlib has no zstd.
 * The media type is only a hint. The first bytes decide (gzip `1f 8b`, zstd `28 b5 2f fd`), so
 * a mislabelled layer still unpacks. The diffID check after unpacking catches anything else.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';

export type LayerCompression = 'gzip' | 'zstd' | 'none';

/** The compression a layer media type declares, or undefined for a type that is not a layer tar. */
export function declaredCompression(mediaType: string): LayerCompression | undefined {
  const type = mediaType.split(';')[0]?.trim().toLowerCase() ?? '';
  // OCI: application/vnd.oci.image.layer.v1.tar[+gzip|+zstd] (and the .nondistributable. ones);
  // Docker: application/vnd.docker.image.rootfs[.foreign].diff.tar[.gzip].
  if (type.endsWith('+gzip') || type.endsWith('.tar.gzip') || type.endsWith('.tar.gz')) return 'gzip';
  if (type.endsWith('+zstd') || type.endsWith('.tar.zstd')) return 'zstd';
  if (type.endsWith('.tar') || type === 'application/x-tar') return 'none';
  return undefined;
}

/** The compression the first bytes of a blob show; 'none' when they match no known magic. */
export function sniffCompression(head: Buffer): LayerCompression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  // A zstd stream may start with a skippable frame (magic 0x184D2A50..5F).
  if (head.length >= 4 && (head.readUInt32LE(0) & 0xfffffff0) === 0x184d2a50) return 'zstd';
  return 'none';
}

/** Marks errors raised by the decompressor itself (corrupt or truncated data). */
export class DecompressError extends Error {
  constructor(
    readonly compression: Exclude<LayerCompression, 'none'>,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'DecompressError';
  }
}

/**
 * A Transform that decompresses `compression`. Its own failures (corrupt or truncated data)
 * satisfy isDecompressError.
 */
export function createDecompressor(compression: Exclude<LayerCompression, 'none'>): Transform {
  return compression === 'gzip' ? createGunzip() : new ZstdStream();
}

/** True for an error raised by a decompressor from createDecompressor about its input. */
export function isDecompressError(err: unknown): boolean {
  if (err instanceof DecompressError) return true;
  // zlib's data errors carry codes such as Z_DATA_ERROR and Z_BUF_ERROR ("unexpected end of file").
  return err instanceof Error && 'code' in err && typeof err.code === 'string' && err.code.startsWith('Z_');
}

/** fzstd's streaming decompressor as a Transform. */
class ZstdStream extends Transform {
  readonly #zstd = new Decompress((data) => {
    // fzstd hands out a fresh array per block, so wrapping it without a copy is safe.
    if (data.length > 0) this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  });

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    try {
      this.#zstd.push(chunk, false);
    } catch (err) {
      callback(new DecompressError('zstd', zstdMessage(err), { cause: err }));
      return;
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.#zstd.push(new Uint8Array(0), true);
    } catch (err) {
      callback(new DecompressError('zstd', zstdMessage(err), { cause: err }));
      return;
    }
    callback();
  }
}

function zstdMessage(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message === 'unexpected EOF' ? 'unexpected end of data (truncated)' : message;
}
