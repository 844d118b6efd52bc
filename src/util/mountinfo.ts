/**
 * The reader of /proc/self/mountinfo (proc(5)): one parser for every layer that asks what is
 * mounted where. Imports nothing of crisp's.
 */
import { readFile } from 'node:fs/promises';

/** One line of /proc/self/mountinfo (proc(5)); paths have their octal escapes decoded. */
export interface MountInfoEntry {
  mountId: number;
  parentId: number;
  root: string;
  mountPoint: string;
  options: string;
  /** Optional fields such as `shared:1`, `master:2`, `unbindable`; empty for a private mount. */
  optional: string[];
  fsType: string;
  source: string;
  superOptions: string;
}

/** Decodes the kernel's `\ooo` escapes (space, tab, newline, backslash). */
export function unescapeMountField(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

export function parseMountInfo(text: string): MountInfoEntry[] {
  const entries: MountInfoEntry[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 4) continue;
    entries.push({
      mountId: Number(fields[0]),
      parentId: Number(fields[1]),
      root: unescapeMountField(fields[3] ?? ''),
      mountPoint: unescapeMountField(fields[4] ?? ''),
      options: fields[5] ?? '',
      optional: fields.slice(6, sep),
      fsType: fields[sep + 1] ?? '',
      source: unescapeMountField(fields[sep + 2] ?? ''),
      superOptions: fields[sep + 3] ?? '',
    });
  }
  return entries;
}

/** The calling process's mount table (asynchronous read; a read error is thrown as it is). */
export async function readMountInfo(): Promise<MountInfoEntry[]> {
  return parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
}
