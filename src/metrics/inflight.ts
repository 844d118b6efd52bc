/**
 * Tracks the RPCs being served right now, so /debug/state can show what the daemon is busy
 * with (and for how long) and shutdown can say what it is waiting for.
 */

export interface InflightCall {
  id: number;
  method: string;
  startedAt: number;
  /** Object ids named by the request (sandboxId, containerId, image, ...). */
  objects: Record<string, string>;
}

export interface InflightView {
  method: string;
  ageMs: number;
  objects: Record<string, string>;
}

export class InflightTracker {
  private nextId = 1;
  private readonly calls = new Map<number, InflightCall>();

  begin(method: string, objects: Record<string, string>): number {
    const id = this.nextId++;
    this.calls.set(id, { id, method, startedAt: performance.now(), objects });
    return id;
  }

  end(id: number): void {
    this.calls.delete(id);
  }

  get size(): number {
    return this.calls.size;
  }

  /** Oldest first. */
  snapshot(): InflightView[] {
    const now = performance.now();
    return [...this.calls.values()].map((c) => ({
      method: c.method,
      ageMs: Math.round(now - c.startedAt),
      objects: c.objects,
    }));
  }
}
