import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { hostIdOf, idmappedMountsWork } from './rootfs.js';

describe('id maps', () => {
  it('finds the host id of an id inside the namespace', () => {
    const maps = [
      { containerId: 0, hostId: 100000, size: 1000 },
      { containerId: 1000, hostId: 500000, size: 10 },
    ];
    assert.equal(hostIdOf(maps, 0), 100000);
    assert.equal(hostIdOf(maps, 999), 100999);
    assert.equal(hostIdOf(maps, 1005), 500005);
    assert.equal(hostIdOf(maps, 1010), undefined);
  });

  const dirs: string[] = [];
  after(async () => {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('probes id-mapped mounts, leaving nothing behind, and says no when the helper fails', async () => {
    const scratch = await mkdtemp(join(tmpdir(), 'crisp-idmap-'));
    dirs.push(scratch);
    // This node (Linux 6, python3) has them; the probe's mount is gone afterwards.
    assert.equal(await idmappedMountsWork(scratch), true);
    assert.equal(await idmappedMountsWork(scratch, '/nonexistent/crisp-idmap-mount'), false);
    const info = await readFile('/proc/self/mountinfo', 'utf8');
    assert.equal(info.includes(scratch), false);
  });
});
