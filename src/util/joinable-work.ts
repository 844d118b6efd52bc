/**
 * Work that a retry joins instead of repeating. kubelet gives up on a slow RunPodSandbox or
 * CreateContainer after its timeout and sends the same request again; the first call is still
 * working. Keyed by the request's identity (the Kubernetes metadata), the retry waits for the
 * first call's result and gets it. If every caller has gone away by the time the work finishes,
 * the result is parked for a grace period for a retry to collect, then discarded (the object
 * is removed), so nothing nobody asked for stays behind.
 */

interface Entry<T> {
  promise: Promise<T>;
  waiters: number;
}

interface Parked<T> {
  result: T;
  timer: NodeJS.Timeout;
}

export class CallerGoneError extends Error {
  constructor() {
    super('the caller went away before the result was ready; a retry will get it');
    this.name = 'CallerGoneError';
  }
}

export class JoinableWork<T> {
  private readonly inflight = new Map<string, Entry<T>>();
  private readonly parked = new Map<string, Parked<T>>();

  constructor(
    private readonly graceMs: number,
    private readonly discard: (key: string, result: T) => Promise<void>,
  ) {}

  /** Runs `start` for `key`, or joins the run already under way, or collects a parked result. */
  run(key: string, signal: AbortSignal | undefined, start: () => Promise<T>): Promise<T> {
    const parked = this.parked.get(key);
    if (parked) {
      clearTimeout(parked.timer);
      this.parked.delete(key);
      return Promise.resolve(parked.result);
    }
    let entry = this.inflight.get(key);
    if (!entry) {
      const created: Entry<T> = { promise: start(), waiters: 0 };
      entry = created;
      this.inflight.set(key, created);
      created.promise.then(
        (result) => {
          this.inflight.delete(key);
          if (created.waiters === 0) this.park(key, result);
        },
        () => {
          this.inflight.delete(key);
        },
      );
    }
    return this.wait(entry, signal);
  }

  private wait(entry: Entry<T>, signal: AbortSignal | undefined): Promise<T> {
    entry.waiters += 1;
    return new Promise<T>((resolve, reject) => {
      let done = false;
      const onAbort = (): void => {
        if (done) return;
        done = true;
        entry.waiters -= 1;
        reject(new CallerGoneError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      if (signal?.aborted) onAbort();
      entry.promise.then(
        (result) => {
          if (done) return;
          done = true;
          signal?.removeEventListener('abort', onAbort);
          resolve(result);
        },
        (err: unknown) => {
          if (done) return;
          done = true;
          signal?.removeEventListener('abort', onAbort);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
  }

  private park(key: string, result: T): void {
    const timer = setTimeout(() => {
      this.parked.delete(key);
      void this.discard(key, result).catch(() => undefined);
    }, this.graceMs);
    timer.unref();
    this.parked.set(key, { result, timer });
  }

  /** Keys with work under way or a parked result (for /debug/state). */
  pending(): { inflight: string[]; parked: string[] } {
    return { inflight: [...this.inflight.keys()], parked: [...this.parked.keys()] };
  }
}
