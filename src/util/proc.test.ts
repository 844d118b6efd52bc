import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { describe, it } from 'node:test';
import { bootTimeNs, processAlive, processArgv, processStartedAtNs } from './proc.js';

describe('/proc facts', () => {
  it('knows when this process started, after the boot and before now', async () => {
    const boot = await bootTimeNs();
    const started = await processStartedAtNs(process.pid);
    const now = BigInt(Date.now()) * 1_000_000n;
    assert.ok(started !== undefined && started > boot && started <= now + 20_000_000n, `${started}`);
    const uptimeNs = BigInt(Math.round(process.uptime() * 1e9));
    // 10 ms ticks, plus a little for the clocks' disagreement.
    assert.ok(now - started + 1_000_000_000n >= uptimeNs, 'the start time is not after the process began');
  });

  it('tells a live process from a gone one, and reads its argv', async () => {
    const child = spawn('sleep', ['30'], { stdio: 'ignore' });
    const pid = child.pid ?? 0;
    try {
      assert.equal(await processAlive(pid), true);
      assert.deepEqual(await processArgv(pid), ['sleep', '30']);
    } finally {
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    assert.equal(await processAlive(pid), false);
    assert.equal(await processArgv(pid), undefined);
    assert.equal(await processStartedAtNs(pid), undefined);
  });
});
