/**
 * Per-key mutual exclusion for read-check-write sequences that span an `await`: work under
 * different keys runs concurrently, work under one key runs in arrival order.
 */
export class KeyedMutex {
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Keys someone holds or waits for (for /debug/state). */
  busyKeys(): string[] {
    return [...this.tails.keys()];
  }
}
