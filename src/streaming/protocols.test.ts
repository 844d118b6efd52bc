import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  negotiateSpdy,
  offeredProtocols,
  remotecommandVersion,
  SPDY_REMOTECOMMAND,
  upgradeKind,
} from './protocols.js';
import { encodeOutcome } from './status.js';

describe('upgrade detection', () => {
  it('tells SPDY from WebSocket and refuses anything else', () => {
    assert.equal(upgradeKind({ connection: 'Upgrade', upgrade: 'SPDY/3.1' }), 'spdy');
    assert.equal(upgradeKind({ connection: 'keep-alive, upgrade', upgrade: 'websocket' }), 'websocket');
    assert.match(JSON.stringify(upgradeKind({ upgrade: 'SPDY/3.1' })), /Connection: Upgrade/);
    assert.match(
      JSON.stringify(upgradeKind({ connection: 'upgrade', upgrade: 'h2c' })),
      /unsupported upgrade/,
    );
  });
});

describe('SPDY protocol negotiation', () => {
  it('takes the first offer the server supports, from repeated or comma-joined headers', () => {
    assert.deepEqual(offeredProtocols(['v4.channel.k8s.io', 'v3.channel.k8s.io, channel.k8s.io']), [
      'v4.channel.k8s.io',
      'v3.channel.k8s.io',
      'channel.k8s.io',
    ]);
    const n = negotiateSpdy(
      { 'x-stream-protocol-version': 'v5.channel.k8s.io, v3.channel.k8s.io, v4.channel.k8s.io' },
      SPDY_REMOTECOMMAND,
    );
    assert.deepEqual(n, { ok: true, protocol: 'v3.channel.k8s.io' });
  });

  it('refuses no header and no overlap with 400 and the supported list', () => {
    const none = negotiateSpdy({}, SPDY_REMOTECOMMAND);
    assert.ok(!none.ok);
    assert.equal(none.status, 400);
    const bad = negotiateSpdy({ 'x-stream-protocol-version': 'v9.channel.k8s.io' }, SPDY_REMOTECOMMAND);
    assert.ok(!bad.ok);
    assert.match(bad.message, /v9\.channel\.k8s\.io.*v4\.channel\.k8s\.io/);
    assert.deepEqual(bad.supported, SPDY_REMOTECOMMAND);
  });

  it('knows each protocol version', () => {
    assert.equal(remotecommandVersion('v4.channel.k8s.io'), 4);
    assert.equal(remotecommandVersion('v4.base64.channel.k8s.io'), 4);
    assert.equal(remotecommandVersion('channel.k8s.io'), 1);
  });
});

describe('error stream outcome', () => {
  it('v4: a metav1.Status client-go can read the exit code from', () => {
    assert.equal(encodeOutcome({ kind: 'success' }, 4)?.toString(), '{"metadata":{},"status":"Success"}');
    const failure = JSON.parse(encodeOutcome({ kind: 'exit', code: 3 }, 4)?.toString() ?? '') as {
      reason: string;
      details: { causes: { reason: string; message: string }[] };
    };
    assert.equal(failure.reason, 'NonZeroExitCode');
    assert.deepEqual(failure.details.causes, [{ reason: 'ExitCode', message: '3' }]);
    const internal = JSON.parse(encodeOutcome({ kind: 'error', message: 'boom' }, 4)?.toString() ?? '') as {
      code: number;
      reason: string;
    };
    assert.equal(internal.code, 500);
    assert.equal(internal.reason, 'InternalError');
  });

  it('v1-v3: text on failure, nothing on success', () => {
    assert.equal(encodeOutcome({ kind: 'success' }, 3), undefined);
    assert.match(encodeOutcome({ kind: 'exit', code: 7 }, 2)?.toString() ?? '', /non-zero exit code.*7/);
    assert.equal(encodeOutcome({ kind: 'error', message: 'boom' }, 1)?.toString(), 'boom');
  });
});
