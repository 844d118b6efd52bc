/**
 * Tracks the RPCs being served right now, so /debug/state can show what the daemon is busy
 * with (and for how long) and shutdown can say what it is waiting for.
 */
export class InflightTracker {
    nextId = 1;
    calls = new Map();
    begin(method, objects) {
        const id = this.nextId++;
        this.calls.set(id, { id, method, startedAt: performance.now(), objects });
        return id;
    }
    end(id) {
        this.calls.delete(id);
    }
    get size() {
        return this.calls.size;
    }
    /** Oldest first. */
    snapshot() {
        const now = performance.now();
        return [...this.calls.values()].map((c) => ({
            method: c.method,
            ageMs: Math.round(now - c.startedAt),
            objects: c.objects,
        }));
    }
}
//# sourceMappingURL=inflight.js.map