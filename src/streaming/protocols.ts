/**
 * The subprotocols of CRI streaming (notes/cri-streaming.md §3, §5, §6) and how one is picked
 * from an HTTP upgrade request, as kubelet's streaming server does: the first protocol the client
 * lists that the server supports wins; none in common is 403 with the supported list; no
 * protocol header on a SPDY upgrade is 400.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** remotecommand over SPDY, newest first (kubelet's library has no v5 over SPDY). */
export const SPDY_REMOTECOMMAND = [
  'v4.channel.k8s.io',
  'v3.channel.k8s.io',
  'v2.channel.k8s.io',
  'channel.k8s.io',
] as const;
export const SPDY_PORTFORWARD = ['portforward.k8s.io'] as const;

/** remotecommand over WebSocket; '' is a client that names no subprotocol. */
export const WS_REMOTECOMMAND = [
  'v5.channel.k8s.io',
  'v4.channel.k8s.io',
  'v4.base64.channel.k8s.io',
  'channel.k8s.io',
  'base64.channel.k8s.io',
] as const;
export const WS_PORTFORWARD = ['v4.channel.k8s.io', 'v4.base64.channel.k8s.io'] as const;

export type Transport = 'spdy' | 'websocket';

/** What a request without a streaming upgrade is told. */
export const NEEDS_UPGRADE =
  'streaming needs an upgrade: send "Connection: Upgrade" with "Upgrade: SPDY/3.1" or "Upgrade: websocket"';

/** Which upgrade the request asks for, or why it is not a usable upgrade. */
export function upgradeKind(headers: IncomingHttpHeaders): Transport | { error: string } {
  const connection = (headers.connection ?? '').toLowerCase();
  const upgrade = (headers.upgrade ?? '').toLowerCase();
  if (!connection.includes('upgrade')) return { error: NEEDS_UPGRADE };
  if (upgrade.includes('spdy/3.1')) return 'spdy';
  if (upgrade.includes('websocket')) return 'websocket';
  return { error: `unsupported upgrade ${JSON.stringify(headers.upgrade ?? '')}: use SPDY/3.1 or websocket` };
}

/** The client's offers from every X-Stream-Protocol-Version header (repeated or comma-separated). */
export function offeredProtocols(raw: string | string[] | undefined): string[] {
  const values = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return values
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

export type Negotiation =
  | { ok: true; protocol: string }
  | { ok: false; status: 400 | 403; message: string; supported: readonly string[] };

/** Picks the SPDY subprotocol: the client's first offer the server supports. */
export function negotiateSpdy(headers: IncomingHttpHeaders, supported: readonly string[]): Negotiation {
  // Node joins repeated unknown headers with ", ", which offeredProtocols splits again.
  const offers = offeredProtocols(headers['x-stream-protocol-version']);
  if (offers.length === 0) {
    return {
      ok: false,
      status: 400,
      message: `X-Stream-Protocol-Version is required; this server speaks ${supported.join(', ')}`,
      supported,
    };
  }
  const chosen = offers.find((o) => supported.includes(o));
  if (chosen === undefined) {
    return {
      ok: false,
      status: 403,
      message: `none of the offered protocols (${offers.join(', ')}) is supported; this server speaks ${supported.join(', ')}`,
      supported,
    };
  }
  return { ok: true, protocol: chosen };
}

/** The remotecommand version number of a protocol name (1 for the unversioned channel.k8s.io). */
export function remotecommandVersion(protocol: string): number {
  const m = /^v(\d+)\./.exec(protocol);
  return m?.[1] === undefined ? 1 : Number(m[1]);
}
