/** The part of hpack.js (HPACK, RFC 7541) that crisp uses; the package ships no types. */
declare module 'hpack.js' {
  import type { Duplex } from 'node:stream';

  export interface HpackHeader {
    name: string;
    value: string;
    neverIndex?: boolean;
    huffman?: boolean;
  }

  export interface HpackOptions {
    table: { maxSize: number };
  }

  /** Feed header-block bytes with write(), run execute(), then read() the decoded headers. */
  export interface Decompressor extends Duplex {
    write(block: Buffer): boolean;
    execute(): void;
    read(): HpackHeader | null;
  }

  /** write() a list of headers, then read() the encoded header-block chunks. */
  export interface Compressor extends Duplex {
    write(headers: HpackHeader[]): boolean;
    read(): Buffer | null;
  }

  const hpack: {
    decompressor: { create(options: HpackOptions): Decompressor };
    compressor: { create(options: HpackOptions): Compressor };
  };
  export default hpack;
}
