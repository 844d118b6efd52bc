/**
 * Keeps the raw bytes of PAX `SCHILY.xattr.*` values, which tar-stream loses.
 *
 * tar-stream decodes every PAX value as UTF-8, so binary xattr values are corrupted. A
 * `security.capability` value with a byte ≥ 0x80 (CAP_SETUID, for example) comes out with
 * U+FFFD in it. This Transform sits just before tar-stream's extractor and passes the bytes
 * through unchanged. It walks the same 512-byte blocks as tar-stream and records the raw xattrs
 * of each entry, keyed by the entry's `byteOffset`: the stream offset just past the entry's
 * header block, which tar-stream also puts on every header.
 *
 * The walk copies tar-stream 3.x's own rules, quirks included, so the two stay in step:
 * - a global PAX header (`g`) is merged only into later per-entry PAX headers;
 * - a PAX `size` overrides the next entry's size;
 * - a directory never has data blocks, even with a non-zero size;
 * - `L`, `K` and `N` blocks are skipped.
 * tar-unpack.ts checks every entry against tar-stream's own (lossy) PAX values and fails if the
 * two disagree, so any drift shows up as an error and cannot silently move xattrs.
 */
import { Transform, type TransformCallback } from 'node:stream';

const BLOCK = 512;
/** tar-stream refuses longer PAX / GNU long headers; past this we stop tracking (it will fail). */
const MAX_LONG_HEADER = 4 * 1024 * 1024;
const XATTR_PREFIX = 'SCHILY.xattr.';

type PaxRecords = Map<string, Buffer>;

type State =
  | { kind: 'header' }
  | { kind: 'skip'; left: number }
  | { kind: 'pax'; global: boolean; size: number; left: number; chunks: Buffer[] };

export class TarPaxTap extends Transform {
  #state: State = { kind: 'header' };
  #header = Buffer.alloc(BLOCK);
  #headerFill = 0;
  /** Absolute offset of the next byte to scan. */
  #offset = 0;
  #global: PaxRecords | null = null;
  #pending: PaxRecords | null = null;
  #xattrs = new Map<number, Map<string, Buffer>>();
  /** Set when the stream stops looking like a tar that tar-stream accepts; tar-stream then fails. */
  #lost = false;

  /**
   * The raw xattrs (name without the `SCHILY.xattr.` prefix → value) of the entry whose header
   * ends at `byteOffset`. Each entry's xattrs are handed out once.
   */
  xattrsAt(byteOffset: number): Map<string, Buffer> | undefined {
    const found = this.#xattrs.get(byteOffset);
    this.#xattrs.delete(byteOffset);
    return found;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.#lost) this.#scan(chunk);
    callback(null, chunk);
  }

  #scan(chunk: Buffer): void {
    let i = 0;
    while (i < chunk.length && !this.#lost) {
      const state = this.#state;
      switch (state.kind) {
        case 'skip': {
          const n = Math.min(state.left, chunk.length - i);
          state.left -= n;
          i += n;
          this.#offset += n;
          if (state.left === 0) this.#state = { kind: 'header' };
          break;
        }
        case 'pax': {
          const n = Math.min(state.left, chunk.length - i);
          state.chunks.push(Buffer.from(chunk.subarray(i, i + n)));
          state.left -= n;
          i += n;
          this.#offset += n;
          if (state.left === 0) this.#paxDone(state);
          break;
        }
        case 'header': {
          const n = Math.min(BLOCK - this.#headerFill, chunk.length - i);
          chunk.copy(this.#header, this.#headerFill, i, i + n);
          this.#headerFill += n;
          i += n;
          this.#offset += n;
          if (this.#headerFill === BLOCK) {
            this.#headerFill = 0;
            this.#onHeader(this.#header);
          }
          break;
        }
      }
    }
  }

  #paxDone(state: Extract<State, { kind: 'pax' }>): void {
    const data = Buffer.concat(state.chunks).subarray(0, state.size);
    const records = decodePax(data);
    if (state.global) {
      this.#global = records;
    } else {
      this.#pending = this.#global === null ? records : new Map([...this.#global, ...records]);
    }
    const pad = padding(state.size);
    this.#state = pad > 0 ? { kind: 'skip', left: pad } : { kind: 'header' };
  }

  #onHeader(block: Buffer): void {
    if (checksum(block) === 8 * 32) return; // an all-zero block: end-of-archive padding
    if (checksum(block) !== decodeNumber(block, 148, 8)) {
      this.#lost = true;
      return;
    }
    const flagByte = block[156] ?? 0;
    const typeflag = flagByte === 0 ? 0 : flagByte - 0x30;
    let size = decodeNumber(block, 124, 12);
    if (size === null || !Number.isSafeInteger(size) || size < 0) {
      this.#lost = true;
      return;
    }
    switch (typeflag) {
      case 72: // 'x' per-entry PAX
      case 55: // 'g' global PAX
        // tar-stream mishandles an empty PAX header (it reads the next padding as one): give up.
        if (size === 0 || size > MAX_LONG_HEADER) {
          this.#lost = true;
          return;
        }
        this.#state = { kind: 'pax', global: typeflag === 55, size, left: size, chunks: [] };
        return;
      case 27: // 'K' GNU long link name
      case 28: // 'L' GNU long name
      case 30: // 'N' old GNU long name (tar-stream treats it as 'L')
        if (size === 0 || size > MAX_LONG_HEADER) {
          this.#lost = true;
          return;
        }
        this.#skip(size + padding(size));
        return;
      default: {
        const pax = this.#pending;
        this.#pending = null;
        const paxSize = pax?.get('size');
        if (paxSize !== undefined && paxSize.length > 0) size = parseInt(paxSize.toString('utf8'), 10);
        if (!(size >= 0)) {
          this.#lost = true;
          return;
        }
        if (pax) {
          const xattrs = new Map<string, Buffer>();
          for (const [key, value] of pax) {
            if (key.startsWith(XATTR_PREFIX)) xattrs.set(key.slice(XATTR_PREFIX.length), value);
          }
          if (xattrs.size > 0) this.#xattrs.set(this.#offset, xattrs);
        }
        const directory = typeflag === 5 || (typeflag === 0 && nameFieldEndsWithSlash(block));
        this.#skip(directory ? 0 : size + padding(size));
      }
    }
  }

  #skip(n: number): void {
    this.#state = n > 0 ? { kind: 'skip', left: n } : { kind: 'header' };
  }
}

function padding(size: number): number {
  const rest = size % BLOCK;
  return rest === 0 ? 0 : BLOCK - rest;
}

/** tar-stream's checksum: the header's bytes with the checksum field counted as spaces. */
function checksum(block: Buffer): number {
  let sum = 8 * 32;
  for (let i = 0; i < 148; i++) sum += block[i] ?? 0;
  for (let i = 156; i < BLOCK; i++) sum += block[i] ?? 0;
  return sum;
}

/** An octal or base-256 number field, exactly as tar-stream decodes it; null when unreadable. */
function decodeNumber(block: Buffer, offset: number, length: number): number | null {
  const field = block.subarray(offset, offset + length);
  const first = field[0] ?? 0;
  if (first & 0x80) {
    if (first !== 0x80 && first !== 0xff) return null;
    const positive = first === 0x80;
    let sum = 0;
    for (let i = 1; i < field.length; i++) {
      const byte = field[i] ?? 0;
      sum = sum * 256 + (positive ? byte : 0xff - byte);
    }
    return positive ? sum : -sum;
  }
  let start = 0;
  while (start < field.length && field[start] === 0x20) start++;
  let end = field.indexOf(0x20, start);
  if (end === -1) end = field.length;
  while (start < end && field[start] === 0) start++;
  if (start === end) return 0;
  return parseInt(field.subarray(start, end).toString('latin1'), 8);
}

function nameFieldEndsWithSlash(block: Buffer): boolean {
  let end = block.indexOf(0, 0);
  if (end === -1 || end > 100) end = 100;
  return end > 0 && block[end - 1] === 0x2f;
}

/** PAX records (`<len> <key>=<value>\n`) with raw values, parsed the way tar-stream does. */
function decodePax(data: Buffer): PaxRecords {
  const records: PaxRecords = new Map();
  let buf = data;
  while (buf.length > 0) {
    let i = 0;
    while (i < buf.length && buf[i] !== 0x20) i++;
    const len = parseInt(buf.subarray(0, i).toString('utf8'), 10);
    if (!len) return records;
    const record = buf.subarray(i + 1, len - 1);
    const eq = record.indexOf(0x3d);
    if (eq === -1) return records;
    records.set(record.subarray(0, eq).toString('utf8'), Buffer.from(record.subarray(eq + 1)));
    buf = buf.subarray(len);
  }
  return records;
}
