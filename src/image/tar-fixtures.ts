/**
 * Building tar archives in tests: tar-stream's packer for ordinary archives, and a raw ustar
 * writer for what the packer cannot produce (binary PAX values, odd typeflags). Also a temp
 * directory helper and a digest helper. Not used by the daemon.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pack, type Pack } from 'tar-stream';

export type EntryHeader = Parameters<Pack['entry']>[0];

export interface TarEntry {
  header: EntryHeader;
  body?: string | Buffer;
}

/** An archive made by tar-stream's packer. */
export async function tarBytes(entries: readonly TarEntry[]): Promise<Buffer> {
  const packer = pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of packer) chunks.push(Buffer.from(chunk as Uint8Array));
  })();
  for (const { header, body } of entries) {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null): void => {
        if (err) reject(err);
        else resolve();
      };
      if (body === undefined) packer.entry(header, done);
      else packer.entry(header, body, done);
    });
  }
  packer.finalize();
  await collected;
  return Buffer.concat(chunks);
}

export interface RawHeader {
  name: string;
  /** The typeflag character: '0' file, '5' dir, 'x' PAX, 'S' sparse, ... */
  typeflag: string;
  size?: number;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  linkname?: string;
}

export interface RawEntry {
  header: RawHeader;
  data?: Buffer;
}

/** An archive written block by block, for what tar-stream's packer cannot express. */
export function rawTarBytes(entries: readonly RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const { header, data } of entries) {
    const body = data ?? Buffer.alloc(0);
    blocks.push(ustarHeader({ ...header, size: header.size ?? body.length }));
    if (body.length > 0) {
      blocks.push(body);
      const pad = (512 - (body.length % 512)) % 512;
      if (pad > 0) blocks.push(Buffer.alloc(pad));
    }
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

/** A PAX extended header entry whose records carry raw byte values. */
export function paxEntry(records: ReadonlyMap<string, Buffer>): RawEntry {
  const parts: Buffer[] = [];
  for (const [key, value] of records) {
    const body = Buffer.concat([Buffer.from(` ${key}=`), value, Buffer.from('\n')]);
    let len = body.length + 1;
    while (String(len).length + body.length !== len) len = String(len).length + body.length;
    parts.push(Buffer.concat([Buffer.from(String(len)), body]));
  }
  return { header: { name: 'PaxHeader', typeflag: 'x' }, data: Buffer.concat(parts) };
}

function ustarHeader(h: RawHeader & { size: number }): Buffer {
  const block = Buffer.alloc(512);
  const octal = (value: number, width: number): string => value.toString(8).padStart(width - 1, '0') + '\0';
  block.write(h.name, 0, 100, 'utf8');
  block.write(octal(h.mode ?? 0o644, 8), 100, 'latin1');
  block.write(octal(h.uid ?? 0, 8), 108, 'latin1');
  block.write(octal(h.gid ?? 0, 8), 116, 'latin1');
  block.write(octal(h.size, 12), 124, 'latin1');
  block.write(octal(h.mtime ?? 1_600_000_000, 12), 136, 'latin1');
  block.write(h.typeflag, 156, 'latin1');
  if (h.linkname) block.write(h.linkname, 157, 100, 'utf8');
  block.write('ustar\0', 257, 'latin1');
  block.write('00', 263, 'latin1');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(octal(sum, 7) + ' ', 148, 'latin1');
  return block;
}

export function sha256(bytes: Buffer): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** Runs `fn` with a fresh directory under the system temp dir, removed afterwards. */
export async function withTempDir<R>(fn: (dir: string) => Promise<R>): Promise<R> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'crisp-image-test-'));
  try {
    return await fn(dir);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
