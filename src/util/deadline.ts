/** Bounding a wait whose work has no timeout of its own at the level the caller needs. */

/**
 * Resolves or rejects as `work` does, or rejects with `onTimeout()` after `ms`. The work itself
 * goes on (it must be bounded by its own timeouts); the caller just stops waiting for it.
 */
export function within<T>(ms: number, work: Promise<T>, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(onTimeout());
    }, ms);
  });
  return Promise.race([work, timeout]).finally(() => {
    clearTimeout(timer);
  });
}
