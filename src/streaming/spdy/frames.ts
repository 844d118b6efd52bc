/**
 * SPDY/3 frame encoding and decoding (SPDY draft 3, section 2), without any I/O or compression.
 *
 * Frames that carry a name/value header block (SYN_STREAM, SYN_REPLY, HEADERS) hold it here in its
 * compressed form: compression needs the connection-wide zlib contexts in header-block.ts, which
 * must see the blocks in wire order. `encodeHeaderBlock`/`decodeHeaderBlock` convert between a
 * header record and the uncompressed block.
 *
 * Every decoding failure throws SpdyProtocolError; the session answers it with GOAWAY.
 */

export const SPDY_VERSION = 3;

export const FrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

export const FLAG_FIN = 0x01;
/** SYN_STREAM only: the recipient may not send on the stream. */
export const FLAG_UNIDIRECTIONAL = 0x02;

/** RST_STREAM status codes. */
export const RstStatus = {
  PROTOCOL_ERROR: 1,
  INVALID_STREAM: 2,
  REFUSED_STREAM: 3,
  UNSUPPORTED_VERSION: 4,
  CANCEL: 5,
  INTERNAL_ERROR: 6,
  FLOW_CONTROL_ERROR: 7,
  STREAM_IN_USE: 8,
  STREAM_ALREADY_CLOSED: 9,
  INVALID_CREDENTIALS: 10,
  FRAME_TOO_LARGE: 11,
} as const;

/** GOAWAY status codes. */
export const GoAwayStatus = {
  OK: 0,
  PROTOCOL_ERROR: 1,
  INTERNAL_ERROR: 2,
} as const;

/** Largest value of a 31-bit stream id. */
export const MAX_STREAM_ID = 0x7fffffff;
/** Largest payload a 24-bit length field can describe. */
export const MAX_FRAME_PAYLOAD = 0xffffff;
const HEADER_SIZE = 8;

/** A violation of the SPDY framing rules by the peer (or undecodable bytes). */
export class SpdyProtocolError extends Error {
  constructor(
    message: string,
    /** GOAWAY status to report: PROTOCOL_ERROR unless the failure was ours. */
    readonly goAwayStatus: number = GoAwayStatus.PROTOCOL_ERROR,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SpdyProtocolError';
  }
}

export interface DataFrame {
  type: 'data';
  streamId: number;
  flags: number;
  data: Buffer;
}
export interface SynStreamFrame {
  type: 'syn_stream';
  streamId: number;
  associatedStreamId: number;
  /** 0 (highest) to 7. */
  priority: number;
  slot: number;
  flags: number;
  /** Compressed name/value block. */
  headerBlock: Buffer;
}
export interface SynReplyFrame {
  type: 'syn_reply';
  streamId: number;
  flags: number;
  headerBlock: Buffer;
}
export interface RstStreamFrame {
  type: 'rst_stream';
  streamId: number;
  status: number;
}
export interface SettingsEntry {
  id: number;
  flags: number;
  value: number;
}
export interface SettingsFrame {
  type: 'settings';
  flags: number;
  entries: SettingsEntry[];
}
export interface PingFrame {
  type: 'ping';
  id: number;
}
export interface GoAwayFrame {
  type: 'goaway';
  lastGoodStreamId: number;
  status: number;
}
export interface HeadersFrame {
  type: 'headers';
  streamId: number;
  flags: number;
  headerBlock: Buffer;
}
export interface WindowUpdateFrame {
  type: 'window_update';
  streamId: number;
  delta: number;
}
/** A control frame of a type this implementation does not know; the spec says to ignore it. */
export interface UnknownControlFrame {
  type: 'unknown';
  frameType: number;
  flags: number;
  payload: Buffer;
}

export type SpdyFrame =
  | DataFrame
  | SynStreamFrame
  | SynReplyFrame
  | RstStreamFrame
  | SettingsFrame
  | PingFrame
  | GoAwayFrame
  | HeadersFrame
  | WindowUpdateFrame
  | UnknownControlFrame;

// ---------------------------------------------------------------------------------------------
// Encoding

function controlHeader(type: number, flags: number, length: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_SIZE + length);
  buf.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  buf.writeUInt16BE(type, 2);
  buf.writeUInt32BE((((flags & 0xff) << 24) | length) >>> 0, 4);
  return buf;
}

function checkStreamId(id: number, allowZero: boolean): void {
  if (!Number.isInteger(id) || id < (allowZero ? 0 : 1) || id > MAX_STREAM_ID) {
    throw new RangeError(`invalid SPDY stream id ${id}`);
  }
}

function checkPayload(length: number): void {
  if (length > MAX_FRAME_PAYLOAD) throw new RangeError(`SPDY frame payload too large (${length} bytes)`);
}

export function encodeDataFrame(streamId: number, flags: number, data: Buffer): Buffer {
  checkStreamId(streamId, false);
  checkPayload(data.length);
  const buf = Buffer.allocUnsafe(HEADER_SIZE + data.length);
  buf.writeUInt32BE(streamId, 0);
  buf.writeUInt32BE((((flags & 0xff) << 24) | data.length) >>> 0, 4);
  data.copy(buf, HEADER_SIZE);
  return buf;
}

export function encodeSynStream(f: Omit<SynStreamFrame, 'type'>): Buffer {
  checkStreamId(f.streamId, false);
  checkStreamId(f.associatedStreamId, true);
  const length = 10 + f.headerBlock.length;
  checkPayload(length);
  const buf = controlHeader(FrameType.SYN_STREAM, f.flags, length);
  buf.writeUInt32BE(f.streamId, 8);
  buf.writeUInt32BE(f.associatedStreamId, 12);
  buf.writeUInt8((f.priority & 0x07) << 5, 16);
  buf.writeUInt8(f.slot & 0xff, 17);
  f.headerBlock.copy(buf, 18);
  return buf;
}

function encodeStreamAndBlock(type: number, streamId: number, flags: number, block: Buffer): Buffer {
  checkStreamId(streamId, false);
  const length = 4 + block.length;
  checkPayload(length);
  const buf = controlHeader(type, flags, length);
  buf.writeUInt32BE(streamId, 8);
  block.copy(buf, 12);
  return buf;
}

export function encodeSynReply(streamId: number, flags: number, headerBlock: Buffer): Buffer {
  return encodeStreamAndBlock(FrameType.SYN_REPLY, streamId, flags, headerBlock);
}

export function encodeHeaders(streamId: number, flags: number, headerBlock: Buffer): Buffer {
  return encodeStreamAndBlock(FrameType.HEADERS, streamId, flags, headerBlock);
}

export function encodeRstStream(streamId: number, status: number): Buffer {
  checkStreamId(streamId, false);
  const buf = controlHeader(FrameType.RST_STREAM, 0, 8);
  buf.writeUInt32BE(streamId, 8);
  buf.writeUInt32BE(status >>> 0, 12);
  return buf;
}

export function encodeSettings(flags: number, entries: readonly SettingsEntry[]): Buffer {
  const buf = controlHeader(FrameType.SETTINGS, flags, 4 + 8 * entries.length);
  buf.writeUInt32BE(entries.length, 8);
  entries.forEach((e, i) => {
    buf.writeUInt32BE((((e.flags & 0xff) << 24) | (e.id & 0xffffff)) >>> 0, 12 + 8 * i);
    buf.writeUInt32BE(e.value >>> 0, 16 + 8 * i);
  });
  return buf;
}

export function encodePing(id: number): Buffer {
  const buf = controlHeader(FrameType.PING, 0, 4);
  buf.writeUInt32BE(id >>> 0, 8);
  return buf;
}

export function encodeGoAway(lastGoodStreamId: number, status: number): Buffer {
  checkStreamId(lastGoodStreamId, true);
  const buf = controlHeader(FrameType.GOAWAY, 0, 8);
  buf.writeUInt32BE(lastGoodStreamId, 8);
  buf.writeUInt32BE(status >>> 0, 12);
  return buf;
}

export function encodeWindowUpdate(streamId: number, delta: number): Buffer {
  checkStreamId(streamId, true);
  const buf = controlHeader(FrameType.WINDOW_UPDATE, 0, 8);
  buf.writeUInt32BE(streamId, 8);
  buf.writeUInt32BE(delta & 0x7fffffff, 12);
  return buf;
}

/** Encodes any frame; header blocks must already be compressed. */
export function encodeFrame(frame: SpdyFrame): Buffer {
  switch (frame.type) {
    case 'data':
      return encodeDataFrame(frame.streamId, frame.flags, frame.data);
    case 'syn_stream':
      return encodeSynStream(frame);
    case 'syn_reply':
      return encodeSynReply(frame.streamId, frame.flags, frame.headerBlock);
    case 'rst_stream':
      return encodeRstStream(frame.streamId, frame.status);
    case 'settings':
      return encodeSettings(frame.flags, frame.entries);
    case 'ping':
      return encodePing(frame.id);
    case 'goaway':
      return encodeGoAway(frame.lastGoodStreamId, frame.status);
    case 'headers':
      return encodeHeaders(frame.streamId, frame.flags, frame.headerBlock);
    case 'window_update':
      return encodeWindowUpdate(frame.streamId, frame.delta);
    case 'unknown': {
      checkPayload(frame.payload.length);
      const buf = controlHeader(frame.frameType, frame.flags, frame.payload.length);
      frame.payload.copy(buf, HEADER_SIZE);
      return buf;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Decoding

export interface FrameDecoderLimits {
  /** Largest accepted DATA payload. Default 16 MiB - 1 (the format's own limit). */
  maxDataFrameLength?: number;
  /** Largest accepted control frame payload. Default 1 MiB. */
  maxControlFrameLength?: number;
}

export const DEFAULT_MAX_DATA_FRAME_LENGTH = MAX_FRAME_PAYLOAD;
export const DEFAULT_MAX_CONTROL_FRAME_LENGTH = 1024 * 1024;

/**
 * Incremental frame decoder: `push` bytes as they arrive and get back every frame they complete.
 * Length limits are checked as soon as a frame header is complete, so an absurd length fails
 * before its payload is buffered. After a throw the decoder stays failed.
 */
export class FrameDecoder {
  private readonly maxData: number;
  private readonly maxControl: number;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private failed: SpdyProtocolError | undefined;

  constructor(limits: FrameDecoderLimits = {}) {
    this.maxData = limits.maxDataFrameLength ?? DEFAULT_MAX_DATA_FRAME_LENGTH;
    this.maxControl = limits.maxControlFrameLength ?? DEFAULT_MAX_CONTROL_FRAME_LENGTH;
  }

  /** Bytes received but not yet part of a complete frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): SpdyFrame[] {
    if (this.failed) throw this.failed;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
    }
    const frames: SpdyFrame[] = [];
    try {
      while (this.buffered >= HEADER_SIZE) {
        const header = this.contiguous(HEADER_SIZE);
        const length = header.readUInt32BE(4) & 0xffffff;
        const isControl = (header[0] ?? 0) & 0x80;
        this.checkHeader(header, length, isControl !== 0);
        if (this.buffered < HEADER_SIZE + length) break;
        const frame = this.take(HEADER_SIZE + length);
        frames.push(parseFrame(frame));
      }
    } catch (err) {
      this.failed =
        err instanceof SpdyProtocolError
          ? err
          : new SpdyProtocolError(`undecodable SPDY frame: ${String(err)}`, GoAwayStatus.PROTOCOL_ERROR, {
              cause: err,
            });
      this.chunks = [];
      this.buffered = 0;
      throw this.failed;
    }
    return frames;
  }

  private checkHeader(header: Buffer, length: number, isControl: boolean): void {
    if (isControl) {
      const version = header.readUInt16BE(0) & 0x7fff;
      if (version !== SPDY_VERSION) throw new SpdyProtocolError(`unsupported SPDY version ${version}`);
      if (length > this.maxControl) {
        throw new SpdyProtocolError(`control frame of ${length} bytes exceeds the ${this.maxControl} limit`);
      }
    } else if (length > this.maxData) {
      throw new SpdyProtocolError(`data frame of ${length} bytes exceeds the ${this.maxData} limit`);
    }
  }

  /** Returns the first `n` buffered bytes as one Buffer, merging chunks only when needed. */
  private contiguous(n: number): Buffer {
    let first = this.chunks[0] as Buffer;
    if (first.length < n) {
      let count = 0;
      let size = 0;
      while (size < n) size += (this.chunks[count++] as Buffer).length;
      first = Buffer.concat(this.chunks.slice(0, count), size);
      this.chunks.splice(0, count, first);
    }
    return first.subarray(0, n);
  }

  private take(n: number): Buffer {
    const out = this.contiguous(n);
    const first = this.chunks[0] as Buffer;
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}

function expectLength(name: string, length: number, ok: boolean): void {
  if (!ok) throw new SpdyProtocolError(`${name} frame has invalid length ${length}`);
}

function nonZeroStream(name: string, id: number): number {
  if (id === 0) throw new SpdyProtocolError(`${name} frame for stream 0`);
  return id;
}

/** Parses one complete frame (header plus payload). */
export function parseFrame(buf: Buffer): SpdyFrame {
  if (buf.length < HEADER_SIZE) throw new SpdyProtocolError('truncated SPDY frame header');
  const word0 = buf.readUInt32BE(0);
  const word1 = buf.readUInt32BE(4);
  const flags = word1 >>> 24;
  const length = word1 & 0xffffff;
  if (buf.length !== HEADER_SIZE + length) {
    throw new SpdyProtocolError(`SPDY frame length ${length} does not match ${buf.length - HEADER_SIZE}`);
  }
  const payload = buf.subarray(HEADER_SIZE);
  if ((word0 & 0x80000000) === 0) {
    return { type: 'data', streamId: nonZeroStream('DATA', word0 & MAX_STREAM_ID), flags, data: payload };
  }
  const version = (word0 >>> 16) & 0x7fff;
  if (version !== SPDY_VERSION) throw new SpdyProtocolError(`unsupported SPDY version ${version}`);
  const type = word0 & 0xffff;
  switch (type) {
    case FrameType.SYN_STREAM: {
      expectLength('SYN_STREAM', length, length >= 10);
      return {
        type: 'syn_stream',
        streamId: nonZeroStream('SYN_STREAM', payload.readUInt32BE(0) & MAX_STREAM_ID),
        associatedStreamId: payload.readUInt32BE(4) & MAX_STREAM_ID,
        priority: payload.readUInt8(8) >>> 5,
        slot: payload.readUInt8(9),
        flags,
        headerBlock: payload.subarray(10),
      };
    }
    case FrameType.SYN_REPLY:
    case FrameType.HEADERS: {
      const name = type === FrameType.SYN_REPLY ? 'SYN_REPLY' : 'HEADERS';
      expectLength(name, length, length >= 4);
      const streamId = nonZeroStream(name, payload.readUInt32BE(0) & MAX_STREAM_ID);
      return {
        type: type === FrameType.SYN_REPLY ? 'syn_reply' : 'headers',
        streamId,
        flags,
        headerBlock: payload.subarray(4),
      };
    }
    case FrameType.RST_STREAM:
      expectLength('RST_STREAM', length, length === 8);
      return {
        type: 'rst_stream',
        streamId: nonZeroStream('RST_STREAM', payload.readUInt32BE(0) & MAX_STREAM_ID),
        status: payload.readUInt32BE(4),
      };
    case FrameType.SETTINGS: {
      expectLength('SETTINGS', length, length >= 4);
      const count = payload.readUInt32BE(0);
      expectLength('SETTINGS', length, length === 4 + 8 * count);
      const entries: SettingsEntry[] = [];
      for (let i = 0; i < count; i++) {
        const w = payload.readUInt32BE(4 + 8 * i);
        entries.push({ flags: w >>> 24, id: w & 0xffffff, value: payload.readUInt32BE(8 + 8 * i) });
      }
      return { type: 'settings', flags, entries };
    }
    case FrameType.PING:
      expectLength('PING', length, length === 4);
      return { type: 'ping', id: payload.readUInt32BE(0) };
    case FrameType.GOAWAY:
      expectLength('GOAWAY', length, length === 8);
      return {
        type: 'goaway',
        lastGoodStreamId: payload.readUInt32BE(0) & MAX_STREAM_ID,
        status: payload.readUInt32BE(4),
      };
    case FrameType.WINDOW_UPDATE:
      expectLength('WINDOW_UPDATE', length, length === 8);
      return {
        type: 'window_update',
        streamId: payload.readUInt32BE(0) & MAX_STREAM_ID,
        delta: payload.readUInt32BE(4) & 0x7fffffff,
      };
    default:
      return { type: 'unknown', frameType: type, flags, payload };
  }
}

// ---------------------------------------------------------------------------------------------
// Name/value header blocks (uncompressed form)

export interface HeaderBlockLimits {
  /** Most name/value pairs accepted. Default 1024. */
  maxHeaders?: number;
}

export const DEFAULT_MAX_HEADERS = 1024;

/**
 * Encodes headers as an uncompressed SPDY/3 block. Names are lowercased (the wire form); names that
 * collide after lowercasing have their values joined with NUL, which is how SPDY repeats a header.
 */
export function encodeHeaderBlock(headers: Readonly<Record<string, string>>): Buffer {
  const merged = new Map<string, string>();
  for (const [rawName, value] of Object.entries(headers)) {
    const name = rawName.toLowerCase();
    if (name.length === 0) throw new RangeError('SPDY header names must not be empty');
    if (name.includes('\0')) throw new RangeError(`SPDY header name ${JSON.stringify(name)} contains NUL`);
    const prev = merged.get(name);
    merged.set(name, prev === undefined ? value : `${prev}\0${value}`);
  }
  const parts: Buffer[] = [];
  const count = Buffer.allocUnsafe(4);
  count.writeUInt32BE(merged.size, 0);
  parts.push(count);
  for (const [name, value] of merged) {
    for (const s of [name, value]) {
      const bytes = Buffer.from(s, 'utf8');
      const len = Buffer.allocUnsafe(4);
      len.writeUInt32BE(bytes.length, 0);
      parts.push(len, bytes);
    }
  }
  return Buffer.concat(parts);
}

/**
 * Decodes an uncompressed block. Names are lowercased; a name that appears twice (not allowed by
 * the spec, but harmless) gets its values joined with NUL like a multi-valued header. The record
 * has no prototype, so names such as `__proto__` are plain keys.
 */
export function decodeHeaderBlock(block: Buffer, limits: HeaderBlockLimits = {}): Record<string, string> {
  const maxHeaders = limits.maxHeaders ?? DEFAULT_MAX_HEADERS;
  if (block.length < 4) throw new SpdyProtocolError('truncated SPDY header block');
  const count = block.readUInt32BE(0);
  if (count > maxHeaders) {
    throw new SpdyProtocolError(`SPDY header block has ${count} headers, more than the ${maxHeaders} limit`);
  }
  const headers = Object.create(null) as Record<string, string>;
  let off = 4;
  const readString = (what: string): string => {
    if (off + 4 > block.length) throw new SpdyProtocolError(`truncated SPDY header block (${what} length)`);
    const len = block.readUInt32BE(off);
    off += 4;
    if (len > block.length - off) {
      throw new SpdyProtocolError(`SPDY header ${what} length ${len} runs past the end of the block`);
    }
    const s = block.toString('utf8', off, off + len);
    off += len;
    return s;
  };
  for (let i = 0; i < count; i++) {
    const name = readString('name').toLowerCase();
    if (name.length === 0) throw new SpdyProtocolError('empty SPDY header name');
    const value = readString('value');
    const prev = headers[name];
    headers[name] = prev === undefined ? value : `${prev}\0${value}`;
  }
  if (off !== block.length) {
    throw new SpdyProtocolError(`${block.length - off} stray bytes after the SPDY header block`);
  }
  return headers;
}
