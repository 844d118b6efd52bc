/**
 * The WebSocket channel framing of CRI streaming (notes/cri-streaming.md §5): each message is a
 * channel number and a payload, binary (`[n][bytes]`) or, in the base64 protocols, text (an ASCII
 * digit then base64). v5 adds a 2-byte `[255, n]` message that half-closes channel n.
 */
import type { WebSocket, RawData } from 'ws';

export interface ChannelMessage {
  channel: number;
  data: Buffer;
  /** A v5 CLOSE signal for `channel` (data is empty). */
  close?: boolean;
}

export class ChannelCodec {
  constructor(
    readonly base64: boolean,
    readonly v5: boolean,
  ) {}

  static forProtocol(protocol: string): ChannelCodec {
    return new ChannelCodec(protocol.includes('base64'), protocol.startsWith('v5.'));
  }

  decode(raw: RawData, isBinary: boolean): ChannelMessage {
    const buf = Array.isArray(raw) ? Buffer.concat(raw) : Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
    if (buf.length === 0) throw new Error('empty websocket message: no channel byte');
    if (this.base64) {
      if (isBinary) throw new Error('binary message on a base64 channel protocol');
      const text = buf.toString('latin1');
      const channel = text.charCodeAt(0) - 0x30;
      if (channel < 0 || channel > 9) throw new Error(`bad channel ${JSON.stringify(text[0])}`);
      return { channel, data: Buffer.from(text.slice(1), 'base64') };
    }
    const channel = buf[0] ?? 0;
    if (this.v5 && channel === 255) {
      if (buf.length !== 2) throw new Error(`a CLOSE signal is 2 bytes, got ${buf.length}`);
      return { channel: buf[1] ?? 0, data: Buffer.alloc(0), close: true };
    }
    return { channel, data: buf.subarray(1) };
  }

  send(ws: WebSocket, channel: number, data: Buffer, cb?: (err?: Error) => void): void {
    if (this.base64) {
      ws.send(String.fromCharCode(0x30 + channel) + data.toString('base64'), { binary: false }, cb);
    } else {
      ws.send(Buffer.concat([Buffer.from([channel]), data]), { binary: true }, cb);
    }
  }
}
