/**
 * The single-use tokens in streaming URLs (CRI Exec/Attach/PortForward answer a URL; the client
 * then connects to it). A token is 16 random bytes in base64url, lives one minute by default,
 * and is consumed by the first request that presents it: a second, late or unknown one gets 404.
 * At most `maxInFlight` are outstanding, as kubelet's own streaming server bounds them.
 */
import { randomBytes } from 'node:crypto';
import { ResourceExhaustedError } from '../errors.js';

export interface ExecRequest {
  kind: 'exec';
  containerId: string;
  cmd: string[];
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export interface AttachRequest {
  kind: 'attach';
  containerId: string;
  tty: boolean;
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

export interface PortForwardRequest {
  kind: 'portforward';
  podSandboxId: string;
  /** The CRI request's ports: used by WebSocket clients; SPDY clients name ports per stream. */
  ports: number[];
}

export type StreamRequest = ExecRequest | AttachRequest | PortForwardRequest;

export const TOKEN_TTL_MS = 60_000;
export const MAX_TOKENS_IN_FLIGHT = 1000;

interface Entry {
  request: StreamRequest;
  expires: number;
}

export class RequestCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly ttlMs = TOKEN_TTL_MS,
    private readonly maxInFlight = MAX_TOKENS_IN_FLIGHT,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Stores the request and returns its new token. */
  insert(request: StreamRequest): string {
    this.evictExpired();
    if (this.entries.size >= this.maxInFlight) {
      throw new ResourceExhaustedError(
        `${this.maxInFlight} streaming requests are waiting for their clients to connect; retry in a minute`,
      );
    }
    let token: string;
    do token = randomBytes(16).toString('base64url');
    while (this.entries.has(token));
    this.entries.set(token, { request, expires: this.now() + this.ttlMs });
    return token;
  }

  /** The request behind `token`, once: consuming deletes it. Undefined when unknown or expired. */
  consume(token: string): StreamRequest | undefined {
    const entry = this.entries.get(token);
    if (entry === undefined) return undefined;
    this.entries.delete(token);
    return entry.expires > this.now() ? entry.request : undefined;
  }

  get size(): number {
    this.evictExpired();
    return this.entries.size;
  }

  private evictExpired(): void {
    const now = this.now();
    // Map order is insertion order, and every entry has the same TTL: stop at the first live one.
    for (const [token, entry] of this.entries) {
      if (entry.expires > now) break;
      this.entries.delete(token);
    }
  }
}
