/**
 * Crash injection for the recovery tests: `CRISP_FAILPOINTS=name[,name...]` in crisp's
 * environment makes the daemon SIGKILL itself the first time it reaches a failpoint of that
 * name, exactly as a crash or an OOM kill would stop it at that spot (no handler, no cleanup,
 * nothing flushed that was not already durable). Unset, as in production, a failpoint is one
 * Set lookup. docs/recovery.md lists the points.
 */
const armed: ReadonlySet<string> = new Set(
  (process.env.CRISP_FAILPOINTS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== ''),
);

/** Dies here (SIGKILL) when `name` is armed; otherwise does nothing. */
export function failpoint(name: string): void {
  if (armed.size === 0 || !armed.has(name)) return;
  process.stderr.write(
    `${JSON.stringify({ level: 60, msg: 'failpoint reached: killing crisp', failpoint: name })}\n`,
  );
  process.kill(process.pid, 'SIGKILL');
}
