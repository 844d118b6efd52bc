/**
 * The resize stream: client-go's JSON encoder writes one `{"Width":W,"Height":H}` object per
 * line (a Go struct without json tags, so the names are capitalised; decode them either way).
 */
import type { TerminalSize } from './stdio.js';

const MAX_PENDING = 4096;

export class ResizeDecoder {
  private pending = '';

  /** Feeds bytes; returns the sizes completed by them. Throws on garbage. */
  push(chunk: Buffer): TerminalSize[] {
    this.pending += chunk.toString('utf8');
    const out: TerminalSize[] = [];
    let nl: number;
    while ((nl = this.pending.indexOf('\n')) !== -1) {
      const line = this.pending.slice(0, nl).trim();
      this.pending = this.pending.slice(nl + 1);
      if (line !== '') out.push(parseSize(line));
    }
    // A last object without a newline (some clients send none) is taken once it parses.
    const rest = this.pending.trim();
    if (rest.endsWith('}')) {
      try {
        out.push(parseSize(rest));
        this.pending = '';
      } catch {
        // not complete yet
      }
    }
    if (this.pending.length > MAX_PENDING) throw new Error('resize stream: a message longer than 4 KiB');
    return out;
  }
}

export function parseSize(text: string): TerminalSize {
  const raw: unknown = JSON.parse(text);
  if (typeof raw !== 'object' || raw === null)
    throw new Error(`resize stream: not an object: ${text.slice(0, 100)}`);
  const fields = new Map<string, unknown>(
    Object.entries(raw as Record<string, unknown>).map(([k, v]) => [k.toLowerCase(), v]),
  );
  const width = fields.get('width');
  const height = fields.get('height');
  const ok = (n: unknown): n is number =>
    typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 0xffff;
  if (!ok(width) || !ok(height)) throw new Error(`resize stream: bad size ${text.slice(0, 100)}`);
  return { width, height };
}
