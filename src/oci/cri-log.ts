/**
 * Reads the CRI log format conmon writes (k8s-file): one line per chunk,
 *   `<timestamp> <stdout|stderr> <P|F>[:more tags] <content>\n`
 * An `F` line ends a line of output (its `\n` was stripped by the writer and is restored here); a
 * `P` line is a partial chunk whose `\n` was added by the writer (so it is not part of the output).
 * Works on bytes, so binary output survives; lines that do not parse are skipped.
 */

export interface CriLogOutput {
  stdout: Buffer;
  stderr: Buffer;
}

export interface CappedCriLogOutput extends CriLogOutput {
  /** A stream had more than `maxBytes` bytes; what was returned is its first `maxBytes` bytes. */
  truncated: boolean;
}

const NL = 0x0a;
const SP = 0x20;

/** Incremental parser: feed chunks in file order, then `end()`. Each stream is capped at `maxBytes`. */
export class CriLogParser {
  readonly #max: number;
  #rest: Buffer = Buffer.alloc(0);
  readonly #parts: Record<'stdout' | 'stderr', Buffer[]> = { stdout: [], stderr: [] };
  readonly #sizes: Record<'stdout' | 'stderr', number> = { stdout: 0, stderr: 0 };
  #truncated = false;

  constructor(maxBytes = Number.POSITIVE_INFINITY) {
    this.#max = maxBytes;
  }

  push(chunk: Buffer): void {
    const buf = this.#rest.length > 0 ? Buffer.concat([this.#rest, chunk]) : chunk;
    let start = 0;
    for (let nl = buf.indexOf(NL, start); nl !== -1; nl = buf.indexOf(NL, start)) {
      this.#line(buf.subarray(start, nl));
      start = nl + 1;
    }
    this.#rest = Buffer.from(buf.subarray(start));
  }

  end(): CappedCriLogOutput {
    // A last line without its newline (the writer was cut off) still counts.
    if (this.#rest.length > 0) this.#line(this.#rest);
    this.#rest = Buffer.alloc(0);
    return {
      stdout: Buffer.concat(this.#parts.stdout),
      stderr: Buffer.concat(this.#parts.stderr),
      truncated: this.#truncated,
    };
  }

  #line(line: Buffer): void {
    const s1 = line.indexOf(SP);
    if (s1 <= 0) return;
    const s2 = line.indexOf(SP, s1 + 1);
    if (s2 === -1) return;
    const stream = line.toString('latin1', s1 + 1, s2);
    if (stream !== 'stdout' && stream !== 'stderr') return;
    // The content starts after the tag's single space; an empty F line may end right after the tag.
    const s3 = line.indexOf(SP, s2 + 1);
    const tagEnd = s3 === -1 ? line.length : s3;
    const tag = line.toString('latin1', s2 + 1, tagEnd).split(':')[0];
    if (tag !== 'P' && tag !== 'F') return;
    const content = s3 === -1 ? Buffer.alloc(0) : line.subarray(s3 + 1);
    this.#append(stream, content);
    if (tag === 'F') this.#append(stream, Buffer.from('\n'));
  }

  #append(stream: 'stdout' | 'stderr', data: Buffer): void {
    const room = this.#max - this.#sizes[stream];
    if (data.length > room) {
      this.#truncated = true;
      if (room <= 0) return;
      data = data.subarray(0, room);
    }
    this.#parts[stream].push(Buffer.from(data));
    this.#sizes[stream] += data.length;
  }
}

/** Parses a whole CRI log (a string is taken as UTF-8). */
export function parseCriLog(text: string | Buffer): CriLogOutput {
  const parser = new CriLogParser();
  parser.push(typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
  const { stdout, stderr } = parser.end();
  return { stdout, stderr };
}
