/**
 * Container lifecycle events, for CRI's GetContainerEvents (kubelet's evented PLEG).
 *
 * The container engine publishes an event right after the store commit of a transition that a
 * CRI client can see (created → CREATED, running → STARTED, stopped or exited → STOPPED, records
 * deleted → DELETED). Infra containers are published too, with their kind: the CRI layer reports
 * them under the pod sandbox id, as containerd and CRI-O do and as kubelet expects.
 *
 * Guarantees, per subscriber, from the moment it subscribed:
 * - every event arrives, in the order of the commits (see `publish`), with `seq` consecutive;
 * - `timestampNs` is wall-clock nanoseconds since the epoch (kubelet compares it with its own
 *   clock) and strictly increasing, even when the clock does not move or steps back;
 * - each event carries the pod and all its containers as they were right after the change: the
 *   store's records are frozen and replaced on every commit, so holding them is a snapshot;
 * - a subscriber that lets `maxQueued` events pile up is cut off: its queue is dropped, it leaves
 *   the bus and its next `next()` rejects with RESOURCE_EXHAUSTED. Events are never skipped
 *   silently, and a slow client cannot make the daemon's memory grow without bound.
 */
import { InternalError, InvalidArgumentError, ResourceExhaustedError, UnavailableError } from '../errors.js';
import type { StateStore, StoredContainer, StoredSandbox } from '../store/state-store.js';
import type { ContainerState } from './state.js';

export type ContainerEventType = 'CREATED' | 'STARTED' | 'STOPPED' | 'DELETED';

/** What changed: the engine's part of an event. */
export interface ContainerChange {
  type: ContainerEventType;
  containerId: string;
  sandboxId: string;
  kind: 'infra' | 'app';
}

export interface ContainerEvent extends Readonly<ContainerChange> {
  /** Position in the bus's stream, from 1: consecutive for a subscriber that was not cut off. */
  readonly seq: number;
  /** Wall-clock ns since the epoch, strictly increasing along the stream. */
  readonly timestampNs: bigint;
  /** The pod right after the change; undefined if its records are already gone. */
  readonly sandbox: StoredSandbox | undefined;
  /** Every container of the pod (infra included) right after the change; a deleted one is absent. */
  readonly containers: readonly StoredContainer[];
}

/** One subscriber's view of the bus. */
export interface EventSubscription {
  /**
   * The next event, waiting for one if none is queued; undefined once closed (by `close()`).
   * Rejects with ResourceExhaustedError once cut off for falling behind, UnavailableError once
   * the bus has closed. One call at a time.
   */
  next(): Promise<ContainerEvent | undefined>;
  /** Leaves the bus and drops what is queued. Idempotent. */
  close(): void;
  /** Events published but not yet taken by `next()`. */
  readonly queued: number;
  /** Aborted when the subscription ends (closed, cut off, or the bus closed). */
  readonly signal: AbortSignal;
}

export interface SubscribeOptions {
  /** Events a subscriber may fall behind by before it is cut off (default DEFAULT_MAX_QUEUED). */
  maxQueued?: number;
}

/** Minutes of heavy pod churn; far more than a client that keeps up ever has queued. */
export const DEFAULT_MAX_QUEUED = 10_000;

/** The CRI-visible events a container's move from `from` to `to` stands for, in order. */
export function transitionEvents(from: ContainerState, to: ContainerState): ContainerEventType[] {
  if (from === to) return [];
  switch (to) {
    case 'created':
      // Also a stopped container created again by reinit (crictl start on an exited container).
      return ['CREATED'];
    case 'running':
    case 'paused':
      // Unpause is not a start: CRI shows paused containers as running.
      return from === 'running' || from === 'paused' ? [] : ['STARTED'];
    case 'stopped':
    case 'exited':
      // stopped → exited is only the cleanup after an exit that was already reported.
      if (from === 'stopped' || from === 'exited') return [];
      // A process that could not be started: the container appears, and has already ended.
      return from === 'configured' ? ['CREATED', 'STOPPED'] : ['STOPPED'];
    case 'configured':
    case 'removing':
    case 'unknown':
      return [];
  }
}

function wallClockNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

class Subscription implements EventSubscription {
  /** Queued events are #queue[#head..]; the consumed prefix is dropped now and then. */
  #queue: ContainerEvent[] = [];
  #head = 0;
  #waiter: { resolve: (e: ContainerEvent | undefined) => void; reject: (err: Error) => void } | undefined;
  #end: { error: Error | undefined } | undefined;
  readonly #ended = new AbortController();

  constructor(
    private readonly maxQueued: number,
    private readonly detach: (s: Subscription) => void,
  ) {}

  get queued(): number {
    return this.#queue.length - this.#head;
  }

  get signal(): AbortSignal {
    return this.#ended.signal;
  }

  deliver(event: ContainerEvent): void {
    if (this.#end) return;
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      waiter.resolve(event);
      return;
    }
    if (this.queued >= this.maxQueued) {
      this.end(
        new ResourceExhaustedError(
          `event client too slow: ${this.maxQueued} container events queued unsent; reconnect and relist`,
          { details: { maxQueued: this.maxQueued, lostSeq: event.seq } },
        ),
      );
      return;
    }
    this.#queue.push(event);
  }

  next(): Promise<ContainerEvent | undefined> {
    if (this.#end?.error) return Promise.reject(this.#end.error);
    if (this.queued > 0) {
      const event = this.#queue[this.#head];
      this.#head++;
      if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      }
      return Promise.resolve(event);
    }
    if (this.#end) return Promise.resolve(undefined);
    if (this.#waiter)
      return Promise.reject(new InternalError('EventSubscription.next() called concurrently'));
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  close(): void {
    this.end(undefined);
  }

  end(error: Error | undefined): void {
    if (this.#end) return;
    this.#end = { error };
    this.#queue = [];
    this.#head = 0;
    this.detach(this);
    this.#ended.abort(error ?? new Error('subscription closed'));
    const waiter = this.#waiter;
    this.#waiter = undefined;
    if (!waiter) return;
    if (error) waiter.reject(error);
    else waiter.resolve(undefined);
  }
}

export interface ContainerEventBusOptions {
  /** Wall-clock ns since the epoch (tests pass a frozen or backwards clock). */
  now?: () => bigint;
}

export class ContainerEventBus {
  readonly #subscribers = new Set<Subscription>();
  #seq = 0;
  #lastNs = 0n;
  #closed: UnavailableError | undefined;
  readonly #now: () => bigint;

  constructor(
    private readonly store: Pick<StateStore, 'getSandbox' | 'listContainers'>,
    options: ContainerEventBusOptions = {},
  ) {
    this.#now = options.now ?? wallClockNs;
  }

  get subscriberCount(): number {
    return this.#subscribers.size;
  }

  subscribe(options: SubscribeOptions = {}): EventSubscription {
    const maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED;
    if (!Number.isInteger(maxQueued) || maxQueued < 1) {
      throw new InvalidArgumentError('maxQueued', `must be a positive integer, got ${maxQueued}`);
    }
    const sub = new Subscription(maxQueued, (s) => this.#subscribers.delete(s));
    if (this.#closed) sub.end(this.#closed);
    else this.#subscribers.add(sub);
    return sub;
  }

  /**
   * Stamps the change and hands it, with a snapshot of its pod, to every subscriber. Call it
   * right after the store commit of the change, with no `await` in between: commits apply one
   * at a time, each only after its own disk write, so nothing can change the store between a
   * commit and its publish, and publish order is commit order.
   */
  publish(change: ContainerChange): void {
    const wall = this.#now();
    this.#lastNs = wall > this.#lastNs ? wall : this.#lastNs + 1n;
    const seq = ++this.#seq;
    if (this.#subscribers.size === 0) return;
    const event: ContainerEvent = Object.freeze({
      type: change.type,
      containerId: change.containerId,
      sandboxId: change.sandboxId,
      kind: change.kind,
      seq,
      timestampNs: this.#lastNs,
      sandbox: this.store.getSandbox(change.sandboxId),
      containers: Object.freeze(
        this.store.listContainers().filter((c) => c.config.sandboxId === change.sandboxId),
      ),
    });
    // A subscriber cut off here leaves the set; deleting the current element is safe in a loop.
    for (const sub of this.#subscribers) sub.deliver(event);
  }

  /** Publishes what a committed transition from `from` to `to` means for CRI clients. */
  transitioned(
    config: Pick<StoredContainer['config'], 'id' | 'sandboxId' | 'kind'>,
    from: ContainerState,
    to: ContainerState,
  ): void {
    for (const type of transitionEvents(from, to)) {
      // A pod's infra container is announced as STARTED by the sandbox engine once the pod is
      // recorded ready, so the event's pod status says READY (as containerd and CRI-O report it).
      if (type === 'STARTED' && config.kind === 'infra') continue;
      this.publish({ type, containerId: config.id, sandboxId: config.sandboxId, kind: config.kind });
    }
  }

  /** Publishes DELETED after a container's records were deleted; `before` is its last record. */
  deleted(before: StoredContainer): void {
    // A container that never got past 'configured' was never announced (a failed create).
    if (before.state.state === 'configured') return;
    this.publish({
      type: 'DELETED',
      containerId: before.config.id,
      sandboxId: before.config.sandboxId,
      kind: before.config.kind,
    });
  }

  /** Ends every subscription with UNAVAILABLE (the daemon is stopping); later ones end at once. */
  close(): void {
    this.#closed ??= new UnavailableError('crisp is shutting down; reconnect and relist');
    for (const sub of this.#subscribers) sub.end(this.#closed);
  }
}
