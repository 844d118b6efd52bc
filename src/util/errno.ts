/** The errno name (`ENOENT`, `ESRCH`, ...) a Node system error carries, or undefined for any other value. */
export function errnoCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string')
    return err.code;
  return undefined;
}
