/**
 * Lets gRPC clients that send an invalid HTTP/2 `:authority` talk to crisp.
 *
 * Over a unix socket, grpc-go before 1.5x (kubelets before 1.26, crictl 1.26 and older, many CSI
 * and CRI tools) sends the socket path ("/run/crisp/crisp.sock") or nothing as `:authority`.
 * Node's HTTP/2 stack (nghttp2) rejects such a request with RST_STREAM PROTOCOL_ERROR before any
 * JavaScript sees it, and offers no switch to relax that check. CRI-O and containerd are Go
 * servers and accept it, so an operator's old tooling must work with crisp too.
 *
 * This stream sits between the accepted socket and grpc-js. It passes bytes through untouched
 * (the server→client direction always, the client→server direction until it has to act) and
 * parses client→server HTTP/2 frames just enough to find header blocks. Every header block is
 * HPACK-decoded to keep the client's dynamic table in step; when a block carries an invalid
 * authority, it is re-encoded with `:authority: localhost` (what newer clients send) as
 * never-indexed literals, which neither read nor change the server's dynamic table. Once one
 * block has been re-encoded, every later block on that connection is re-encoded too, because
 * the client's blocks may refer to table entries the server never saw.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import hpack, { type HpackHeader } from 'hpack.js';

const PREFACE_LENGTH = 24; // "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
const FRAME_HEADER_LENGTH = 9;
const TYPE_HEADERS = 0x1;
const TYPE_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** The smallest SETTINGS_MAX_FRAME_SIZE a peer may announce, so always acceptable. */
const MAX_FRAME_PAYLOAD = 16_384;
/** HTTP/2's default SETTINGS_HEADER_TABLE_SIZE, which Node's server announces. */
const HEADER_TABLE_SIZE = 4_096;
/** A header block larger than this is abuse: grpc-js would refuse it anyway. */
const MAX_HEADER_BLOCK = 1024 * 1024;

const VALID_AUTHORITY = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%[\]]+$/;
export const REPLACEMENT_AUTHORITY = 'localhost';

export function isValidAuthority(value: string): boolean {
  return VALID_AUTHORITY.test(value);
}

interface OpenBlock {
  streamId: number;
  flags: number;
  priority: Buffer | undefined;
  fragments: Buffer[];
  size: number;
  frames: Buffer[];
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_LENGTH);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

/** Parses client→server HTTP/2 bytes and repairs header blocks; stateful per connection. */
export class HeaderBlockRepairer {
  private pending: Buffer = Buffer.alloc(0);
  private prefaceSeen = false;
  private block: OpenBlock | undefined;
  private reencodeAll = false;
  private readonly decoder = hpack.decompressor.create({ table: { maxSize: HEADER_TABLE_SIZE } });
  private readonly encoder = hpack.compressor.create({ table: { maxSize: HEADER_TABLE_SIZE } });
  /** Header blocks whose authority was replaced. */
  repaired = 0;

  /** Returns the bytes to forward for `chunk` (possibly empty while a frame is incomplete). */
  push(chunk: Buffer): Buffer {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const out: Buffer[] = [];
    if (!this.prefaceSeen) {
      if (this.pending.length < PREFACE_LENGTH) return Buffer.alloc(0);
      out.push(this.pending.subarray(0, PREFACE_LENGTH));
      this.pending = this.pending.subarray(PREFACE_LENGTH);
      this.prefaceSeen = true;
    }
    while (this.pending.length >= FRAME_HEADER_LENGTH) {
      const length = this.pending.readUIntBE(0, 3);
      const total = FRAME_HEADER_LENGTH + length;
      if (this.pending.length < total) break;
      const bytes = this.pending.subarray(0, total);
      this.pending = this.pending.subarray(total);
      this.onFrame(bytes, out);
    }
    return out.length === 1 && out[0] ? out[0] : Buffer.concat(out);
  }

  private onFrame(bytes: Buffer, out: Buffer[]): void {
    const type = bytes[3];
    const flags = bytes[4] ?? 0;
    const streamId = bytes.readUInt32BE(5) & 0x7fffffff;
    const payload = bytes.subarray(FRAME_HEADER_LENGTH);
    if (type === TYPE_HEADERS) {
      let offset = 0;
      let padding = 0;
      if (flags & FLAG_PADDED) {
        padding = payload[0] ?? 0;
        offset = 1;
      }
      let priority: Buffer | undefined;
      if (flags & FLAG_PRIORITY) {
        priority = payload.subarray(offset, offset + 5);
        offset += 5;
      }
      if (offset + padding > payload.length) throw new Error('malformed HEADERS frame');
      this.block = { streamId, flags, priority, fragments: [], size: 0, frames: [] };
      this.addFragment(bytes, payload.subarray(offset, payload.length - padding));
      if (flags & FLAG_END_HEADERS) this.finishBlock(out);
    } else if (type === TYPE_CONTINUATION && this.block) {
      this.addFragment(bytes, payload);
      if (flags & FLAG_END_HEADERS) this.finishBlock(out);
    } else {
      // Anything else, including a frame that breaks a header block (the server rejects that).
      out.push(bytes);
    }
  }

  private addFragment(frameBytes: Buffer, fragment: Buffer): void {
    const block = this.block;
    if (!block) return;
    block.frames.push(frameBytes);
    block.fragments.push(fragment);
    block.size += fragment.length;
    if (block.size > MAX_HEADER_BLOCK) throw new Error('header block too large');
  }

  private finishBlock(out: Buffer[]): void {
    const block = this.block;
    if (!block) return;
    this.block = undefined;
    this.decoder.write(Buffer.concat(block.fragments));
    this.decoder.execute();
    const headers: HpackHeader[] = [];
    for (let h = this.decoder.read(); h !== null; h = this.decoder.read()) headers.push(h);

    const authority = headers.find((h) => h.name === ':authority');
    const bad = authority !== undefined && !isValidAuthority(authority.value);
    if (!bad && !this.reencodeAll) {
      out.push(...block.frames);
      return;
    }
    if (authority && bad) {
      authority.value = REPLACEMENT_AUTHORITY;
      this.repaired += 1;
    }
    this.reencodeAll = true;
    this.encoder.write(
      headers.map((h) => ({ name: h.name, value: h.value, neverIndex: true, huffman: false })),
    );
    const encoded: Buffer[] = [];
    for (let b = this.encoder.read(); b !== null; b = this.encoder.read()) encoded.push(b);
    this.emitBlock(block, Buffer.concat(encoded), out);
  }

  private emitBlock(block: OpenBlock, headerBlock: Buffer, out: Buffer[]): void {
    const prefix = block.priority ?? Buffer.alloc(0);
    const firstRoom = MAX_FRAME_PAYLOAD - prefix.length;
    let rest = headerBlock.subarray(Math.min(firstRoom, headerBlock.length));
    const first = headerBlock.subarray(0, Math.min(firstRoom, headerBlock.length));
    const keep = block.flags & (FLAG_END_STREAM | FLAG_PRIORITY);
    out.push(
      frame(
        TYPE_HEADERS,
        keep | (rest.length === 0 ? FLAG_END_HEADERS : 0),
        block.streamId,
        Buffer.concat([prefix, first]),
      ),
    );
    while (rest.length > 0) {
      const piece = rest.subarray(0, MAX_FRAME_PAYLOAD);
      rest = rest.subarray(piece.length);
      out.push(frame(TYPE_CONTINUATION, rest.length === 0 ? FLAG_END_HEADERS : 0, block.streamId, piece));
    }
  }
}

/**
 * A Duplex over an accepted socket for grpc-js's connection injector: reads go through a
 * HeaderBlockRepairer, writes go straight to the socket.
 */
export class AuthorityRepairStream extends Duplex {
  private readonly repairer = new HeaderBlockRepairer();

  constructor(
    private readonly socket: Socket,
    onRepair: () => void,
  ) {
    super({ allowHalfOpen: false });
    socket.on('data', (chunk: Buffer) => {
      let bytes: Buffer;
      const before = this.repairer.repaired;
      try {
        bytes = this.repairer.push(chunk);
      } catch (err) {
        this.destroy(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (this.repairer.repaired !== before) onRepair();
      if (bytes.length > 0 && !this.push(bytes)) socket.pause();
    });
    socket.once('end', () => this.push(null));
    socket.once('error', (err) => this.destroy(err));
    socket.once('close', () => this.destroy());
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.socket.write(chunk, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.socket.end(callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.socket.destroy();
    callback(err);
  }
}
