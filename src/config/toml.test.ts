import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { configDigest, configToToml, defaultConfig, loadConfig, type CrispConfig } from './index.js';

const defaultStreaming = defaultConfig().streaming;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'crisp-toml-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function roundTrip(config: CrispConfig): Promise<CrispConfig> {
  const file = join(dir, 'round-trip.toml');
  await writeFile(file, configToToml(config));
  return (await loadConfig({ file, env: {} })).config;
}

const custom: CrispConfig = {
  ...defaultConfig(),
  listen: '/run/k8s/crisp.sock',
  socket_group: 'kube',
  log_level: 'debug',
  metrics_address: '',
  cgroup_driver: 'systemd',
  default_runtime: 'kata.v2',
  // Deliberately out of order: the output must not depend on insertion order.
  runtimes: {
    'kata.v2': { path: '/opt/kata/bin/kata-runtime' },
    crun: { path: '/usr/bin/crun' },
    runc: { path: '/usr/sbin/runc' },
  },
  image: {
    registries_config: '/etc/registries.conf',
    auth_file: '/root/auth.json',
    pause_image: 'pause:3.10',
    pull_timeout_seconds: 120,
  },
  network: {
    cni_conf_dir: '/etc/cni/net.d',
    cni_bin_dirs: ['/a "quoted" dir', '/b'],
    plugin_timeout_seconds: 7,
  },
  streaming: { ...defaultStreaming, address: '::', port: 10010 },
};

describe('configToToml', () => {
  it('round-trips the defaults through loadConfig', async () => {
    assert.deepEqual(await roundTrip(defaultConfig()), defaultConfig());
  });

  it('round-trips a customised config through loadConfig', async () => {
    assert.deepEqual(await roundTrip(custom), custom);
  });

  it('puts top-level scalars first, then the tables, in a fixed order', () => {
    const text = configToToml(custom);
    const lines = text.split('\n');
    const firstTable = lines.findIndex((l) => l.startsWith('['));
    assert.ok(firstTable > 0);
    const scalars = lines.slice(0, firstTable).filter((l) => l !== '');
    assert.deepEqual(
      scalars.map((l) => l.split(' = ')[0]),
      [
        'listen',
        'socket_group',
        'root_dir',
        'run_dir',
        'log_level',
        'log_format',
        'metrics_address',
        'cgroup_driver',
        'conmon_path',
        'oom_score_adj_clamp',
        'default_runtime',
        'pids_limit',
        'tolerate_missing_hugetlb_controller',
      ],
    );
    const tables = lines.filter((l) => l.startsWith('['));
    assert.deepEqual(tables, [
      '[runtimes.runc]',
      '[runtimes.crun]',
      '[runtimes."kata.v2"]',
      '[image]',
      '[network]',
      '[streaming]',
    ]);
    assert.ok(text.endsWith('\n'));
  });

  it('is stable: key insertion order does not change the text or the digest', () => {
    const reordered: CrispConfig = {
      streaming: { ...custom.streaming },
      network: custom.network,
      image: custom.image,
      runtimes: {
        runc: { path: '/usr/sbin/runc' },
        crun: { path: '/usr/bin/crun' },
        'kata.v2': { path: '/opt/kata/bin/kata-runtime' },
      },
      default_runtime: custom.default_runtime,
      tolerate_missing_hugetlb_controller: custom.tolerate_missing_hugetlb_controller,
      pids_limit: custom.pids_limit,
      oom_score_adj_clamp: custom.oom_score_adj_clamp,
      conmon_path: custom.conmon_path,
      cgroup_driver: custom.cgroup_driver,
      metrics_address: custom.metrics_address,
      log_format: custom.log_format,
      log_level: custom.log_level,
      run_dir: custom.run_dir,
      root_dir: custom.root_dir,
      socket_group: custom.socket_group,
      listen: custom.listen,
    };
    assert.equal(configToToml(reordered), configToToml(custom));
    assert.equal(configDigest(reordered), configDigest(custom));
  });
});

describe('configDigest', () => {
  it('is a sha256 hex digest that changes with the config', () => {
    const digest = configDigest(defaultConfig());
    assert.match(digest, /^[0-9a-f]{64}$/);
    assert.equal(configDigest(defaultConfig()), digest);
    assert.notEqual(configDigest({ ...defaultConfig(), log_level: 'debug' }), digest);
  });
});
