import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { InvalidArgumentError } from '../errors.js';
import { ipRanges, parsePodCidrs, PodCidrStore } from './pod-cidr.js';

describe('pod CIDRs', () => {
  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('takes one CIDR or a dual-stack pair, and nothing for empty', () => {
    assert.deepEqual(parsePodCidrs('10.244.1.0/24', 'f'), ['10.244.1.0/24']);
    assert.deepEqual(parsePodCidrs('10.244.1.0/24, fd00:1::/64', 'f'), ['10.244.1.0/24', 'fd00:1::/64']);
    assert.deepEqual(parsePodCidrs('', 'f'), []);
    assert.deepEqual(ipRanges(['10.244.1.0/24', 'fd00:1::/64']), [
      [{ subnet: '10.244.1.0/24' }],
      [{ subnet: 'fd00:1::/64' }],
    ]);
    assert.equal(ipRanges([]), undefined);
  });

  it('refuses what is not a CIDR, naming the field', () => {
    for (const bad of ['10.244.1.0', '10.244.1.0/33', 'fd00::/129', 'x/24', '10.0.0.0/24/1', '10.0.0.0/-1']) {
      assert.throws(
        () => parsePodCidrs(bad, 'runtime_config.network_config.pod_cidr'),
        (err: unknown) =>
          err instanceof InvalidArgumentError &&
          err.field === 'runtime_config.network_config.pod_cidr' &&
          err.message.includes(JSON.stringify(bad)),
      );
    }
  });

  it('keeps them across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'crisp-podcidr-'));
    dirs.push(dir);
    const file = join(dir, 'pod-cidr');
    const store = new PodCidrStore(file);
    await store.load();
    assert.deepEqual(store.cidrs, []);
    await store.set(['10.244.1.0/24']);
    assert.equal(await readFile(file, 'utf8'), '10.244.1.0/24');
    const again = new PodCidrStore(file);
    await again.load();
    assert.deepEqual(again.cidrs, ['10.244.1.0/24']);
  });
});
