import { readdir } from 'node:fs/promises';

/** The errno name (`ENOENT`, `ESRCH`, ...) a Node system error carries, or undefined for any other value. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string')
    return err.code;
  return undefined;
}

/** The names in `dir`, or none when it does not exist (any other error is thrown). */
export async function readdirIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw err;
  }
}
