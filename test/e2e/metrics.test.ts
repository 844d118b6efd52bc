/** The operator endpoint of a real daemon: /metrics in Prometheus format and /debug/state. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connectCri, type CriClients } from './harness/cri-client.js';
import { removeTestDirs, startCrisp, type RunningCrisp } from './harness/daemon.js';

describe('metrics and debug endpoints', () => {
  let crisp: RunningCrisp;
  let cri: CriClients;

  before(async () => {
    crisp = await startCrisp();
    cri = await connectCri(crisp.dirs.socket);
  });

  after(async () => {
    cri.close();
    await crisp.stop();
    await removeTestDirs(crisp.dirs);
  });

  it('binds the ephemeral metrics port on loopback', () => {
    assert.match(crisp.metricsAddress, /^127\.0\.0\.1:\d+$/);
    assert.notEqual(crisp.metricsAddress, '127.0.0.1:0');
  });

  it('serves gRPC request counters and durations, plus process metrics', async () => {
    await cri.runtime.Version({});
    await cri.runtime.Version({});
    await cri.runtime.RuntimeConfig({});
    await cri.runtime.PodSandboxStatus({ pod_sandbox_id: '' }).catch(() => undefined);

    const res = await fetch(`${crisp.metricsUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    assert.match(text, /^crisp_grpc_requests_total\{method="Version",code="OK"\} 2$/m);
    assert.match(text, /^crisp_grpc_requests_total\{method="RuntimeConfig",code="OK"\} 1$/m);
    assert.match(text, /^crisp_grpc_requests_total\{method="PodSandboxStatus",code="INVALID_ARGUMENT"\} 1$/m);
    assert.match(text, /^crisp_grpc_request_duration_seconds_count\{method="Version"\} 2$/m);
    assert.match(text, /^crisp_grpc_request_duration_seconds_bucket\{le="0.005",method="Version"\} \d+$/m);
    assert.match(text, /^process_resident_memory_bytes \d+/m);
    assert.match(text, /^nodejs_eventloop_lag_seconds /m);
  });

  it('serves /debug/state as JSON', async () => {
    const res = await fetch(`${crisp.metricsUrl}/debug/state`);
    assert.equal(res.status, 200);
    const state = (await res.json()) as Record<string, unknown>;
    assert.equal(state.pid, crisp.pid);
    assert.match(String(state.configDigest), /^[0-9a-f]{64}$/);
    assert.equal(typeof state.uptimeSeconds, 'number');
    assert.ok(Array.isArray(state.inflight));
    assert.equal(typeof state.store, 'object');
  });

  it('answers 404 for other paths and 405 for other methods', async () => {
    assert.equal((await fetch(`${crisp.metricsUrl}/nope`)).status, 404);
    assert.equal((await fetch(`${crisp.metricsUrl}/metrics`, { method: 'POST' })).status, 405);
  });
});
