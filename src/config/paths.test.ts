import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultConfig, derivePaths } from './index.js';

describe('derivePaths', () => {
  it('puts persistent data under root_dir and volatile data under run_dir', () => {
    assert.deepEqual(derivePaths(defaultConfig()), {
      stateDb: '/var/lib/crisp/state',
      containersDir: '/var/lib/crisp/containers',
      blobsDir: '/var/lib/crisp/blobs',
      layersDir: '/var/lib/crisp/layers',
      bundlesDir: '/run/crisp/bundles',
      exitsDir: '/run/crisp/exits',
      attachDir: '/run/crisp/attach',
      netnsDir: '/run/crisp/netns',
      tmpDir: '/var/lib/crisp/tmp',
      pidFile: '/run/crisp/crisp.pid',
      adminSocket: '/run/crisp/admin.sock',
      runcRoot: '/run/crisp/runc',
      podsDir: '/run/crisp/pods',
      execDir: '/run/crisp/exec',
      cniResultsDir: '/var/lib/crisp/cni/results',
      podCidrFile: '/var/lib/crisp/pod-cidr',
    });
  });

  it('follows the configured directories', () => {
    const paths = derivePaths({ root_dir: '/data/crisp', run_dir: '/tmp/run' });
    assert.equal(paths.stateDb, '/data/crisp/state');
    assert.equal(paths.pidFile, '/tmp/run/crisp.pid');
    assert.ok(Object.isFrozen(paths));
  });
});
