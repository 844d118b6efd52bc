import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError, defaultConfig, loadConfig, type CrispConfig, type LoadedConfig } from './index.js';

const defaultStreaming = defaultConfig().streaming;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'crisp-config-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let counter = 0;
async function writeConfig(text: string): Promise<string> {
  const file = join(dir, `crisp-${++counter}.toml`);
  await writeFile(file, text);
  return file;
}

/** Loads `text` as an explicit config file and returns the ConfigError it must raise. */
async function rejectFile(text: string): Promise<{ err: ConfigError; file: string }> {
  const file = await writeConfig(text);
  try {
    await loadConfig({ file, env: {} });
  } catch (err: unknown) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.equal(err.file, file);
    return { err, file };
  }
  assert.fail(`config was accepted:\n${text}`);
}

async function rejectOverride(
  env: NodeJS.ProcessEnv,
  flags: Record<string, string> = {},
  text = '',
): Promise<ConfigError> {
  const file = await writeConfig(text);
  try {
    await loadConfig({ file, env, flags });
  } catch (err: unknown) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('override was accepted');
}

const FULL = `
listen = "unix:///run/k8s/crisp.sock"
socket_group = "1234"
root_dir = "/data/crisp"
run_dir = "/run/k8s/crisp"
log_level = "debug"
log_format = "json"
metrics_address = "[::1]:9100"
cgroup_driver = "systemd"
conmon_path = "/usr/local/bin/conmon"
default_runtime = "crun"

[runtimes.crun]
path = "/usr/bin/crun"

[runtimes."kata.v2"]
path = "/opt/kata/bin/kata-runtime"

[image]
registries_config = "/etc/crisp/registries.conf"
auth_file = "/etc/crisp/auth.json"
pause_image = "registry.k8s.io/pause:3.10"

[network]
cni_conf_dir = "/etc/crisp/cni"
cni_bin_dirs = ["/usr/libexec/cni"]

[streaming]
address = "::1"
port = 10010
`;

describe('loadConfig', () => {
  it('uses the defaults when the default file is missing', async () => {
    const defaultFile = join(dir, 'absent', 'crisp.toml');
    const loaded = await loadConfig({ defaultFile, env: {} });
    assert.deepEqual(loaded, { config: defaultConfig(), file: defaultFile, fileFound: false });
  });

  it('looks for /etc/crisp/crisp.toml by default', async () => {
    const loaded = await loadConfig({ env: {} }).catch((err: unknown) => err);
    // Whether that file exists on this machine is not ours to decide; where it was looked for is.
    if (loaded instanceof ConfigError) assert.equal(loaded.file, '/etc/crisp/crisp.toml');
    else assert.equal((loaded as LoadedConfig).file, '/etc/crisp/crisp.toml');
  });

  it('rejects a missing file named by CRISP_CONFIG', async () => {
    const missing = join(dir, 'absent', 'crisp.toml');
    await assert.rejects(loadConfig({ env: { CRISP_CONFIG: missing } }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, `${missing}: config file not found (named by environment CRISP_CONFIG)`);
      return true;
    });
  });

  it('gives exactly the documented defaults', () => {
    const expected: CrispConfig = {
      listen: '/run/crisp/crisp.sock',
      socket_group: '',
      root_dir: '/var/lib/crisp',
      run_dir: '/run/crisp',
      log_level: 'info',
      log_format: 'auto',
      metrics_address: '127.0.0.1:9547',
      cgroup_driver: 'cgroupfs',
      conmon_path: '/usr/bin/conmon',
      oom_score_adj_clamp: 'auto',
      default_runtime: 'runc',
      pids_limit: 0,
      tolerate_missing_hugetlb_controller: true,
      runtimes: { runc: { path: '/usr/sbin/runc' } },
      image: {
        registries_config: '/etc/containers/registries.conf',
        auth_file: '',
        pause_image: '',
        pull_timeout_seconds: 600,
      },
      network: {
        cni_conf_dir: '/etc/cni/net.d',
        cni_bin_dirs: ['/opt/cni/bin', '/usr/lib/cni'],
        plugin_timeout_seconds: 30,
      },
      streaming: { ...defaultStreaming, address: '127.0.0.1', port: 0 },
    };
    assert.deepEqual(defaultConfig(), expected);
  });

  it('treats an empty file as all defaults', async () => {
    const file = await writeConfig('# nothing set\n');
    const loaded = await loadConfig({ file, env: {} });
    assert.equal(loaded.file, file);
    assert.equal(loaded.fileFound, true);
    assert.deepEqual(loaded.config, defaultConfig());
  });

  it('reads a full file', async () => {
    const file = await writeConfig(FULL);
    const { config, fileFound } = await loadConfig({ file, env: {} });
    assert.equal(fileFound, true);
    assert.deepEqual(config, {
      listen: '/run/k8s/crisp.sock',
      socket_group: '1234',
      root_dir: '/data/crisp',
      run_dir: '/run/k8s/crisp',
      log_level: 'debug',
      log_format: 'json',
      metrics_address: '[::1]:9100',
      cgroup_driver: 'systemd',
      conmon_path: '/usr/local/bin/conmon',
      oom_score_adj_clamp: 'auto',
      default_runtime: 'crun',
      pids_limit: 0,
      tolerate_missing_hugetlb_controller: true,
      runtimes: {
        runc: { path: '/usr/sbin/runc' },
        crun: { path: '/usr/bin/crun' },
        'kata.v2': { path: '/opt/kata/bin/kata-runtime' },
      },
      image: {
        registries_config: '/etc/crisp/registries.conf',
        auth_file: '/etc/crisp/auth.json',
        pause_image: 'registry.k8s.io/pause:3.10',
        pull_timeout_seconds: 600,
      },
      network: {
        cni_conf_dir: '/etc/crisp/cni',
        cni_bin_dirs: ['/usr/libexec/cni'],
        plugin_timeout_seconds: 30,
      },
      streaming: { ...defaultStreaming, address: '::1', port: 10010 },
    } satisfies CrispConfig);
  });

  it('picks the file from CRISP_CONFIG when no file is given, and a given file wins over it', async () => {
    const fromEnv = await writeConfig('log_level = "warn"\n');
    const fromFlag = await writeConfig('log_level = "error"\n');
    assert.equal((await loadConfig({ env: { CRISP_CONFIG: fromEnv } })).config.log_level, 'warn');
    const both = await loadConfig({ file: fromFlag, env: { CRISP_CONFIG: fromEnv } });
    assert.equal(both.file, fromFlag);
    assert.equal(both.config.log_level, 'error');
  });

  it('applies defaults < file < environment < flags', async () => {
    const file = await writeConfig(
      'root_dir = "/file/root"\nrun_dir = "/file/run"\nlog_level = "debug"\nlog_format = "pretty"\n',
    );
    const env = { CRISP_ROOT_DIR: '/env/root', CRISP_LOG_LEVEL: 'warn', CRISP_LOG_FORMAT: 'json' };
    const { config } = await loadConfig({ file, env, flags: { root_dir: '/flag/root' } });
    assert.equal(config.root_dir, '/flag/root'); // flag over env over file
    assert.equal(config.log_level, 'warn'); // env over file
    assert.equal(config.log_format, 'json'); // env over file
    assert.equal(config.run_dir, '/file/run'); // file over default
    assert.equal(config.conmon_path, '/usr/bin/conmon'); // default

    const all = await loadConfig({
      file,
      env: {
        CRISP_LISTEN: '/env/crisp.sock',
        CRISP_RUN_DIR: '/env/run',
        CRISP_METRICS_ADDRESS: '0.0.0.0:9000',
      },
      flags: { listen: '/flag/crisp.sock', run_dir: '/flag/run', log_level: 'trace', metrics_address: '' },
    });
    assert.equal(all.config.listen, '/flag/crisp.sock');
    assert.equal(all.config.run_dir, '/flag/run');
    assert.equal(all.config.log_level, 'trace');
    assert.equal(all.config.metrics_address, '');
  });

  it('ignores flags that are undefined', async () => {
    const file = await writeConfig('log_level = "debug"\n');
    const { config } = await loadConfig({ file, env: {}, flags: { log_level: undefined } });
    assert.equal(config.log_level, 'debug');
  });

  it('normalises a unix:// listen address to the plain path', async () => {
    const file = await writeConfig('listen = "unix:///run/x/crisp.sock"\n');
    assert.equal((await loadConfig({ file, env: {} })).config.listen, '/run/x/crisp.sock');
    const { config } = await loadConfig({ file, env: {}, flags: { listen: 'unix:///run/y/crisp.sock' } });
    assert.equal(config.listen, '/run/y/crisp.sock');
  });

  it('normalises paths so equal directories compare equal', async () => {
    const file = await writeConfig('root_dir = "/var/lib//crisp/"\nrun_dir = "/run/./crisp/x/.."\n');
    const { config } = await loadConfig({ file, env: {} });
    assert.equal(config.root_dir, '/var/lib/crisp');
    assert.equal(config.run_dir, '/run/crisp');
  });

  it('accepts an empty metrics_address (metrics off) and the host:port forms', async () => {
    for (const address of ['', '127.0.0.1:0', '0.0.0.0:9547', '[::]:9547', '[::1]:65535', 'localhost:9547']) {
      const file = await writeConfig(`metrics_address = ${JSON.stringify(address)}\n`);
      assert.equal((await loadConfig({ file, env: {} })).config.metrics_address, address);
    }
  });

  it('merges [runtimes.X] over the default runtimes', async () => {
    const file = await writeConfig('[runtimes.crun]\npath = "/usr/bin/crun"\n');
    const { config } = await loadConfig({ file, env: {} });
    assert.deepEqual(config.runtimes, { runc: { path: '/usr/sbin/runc' }, crun: { path: '/usr/bin/crun' } });

    const override = await writeConfig('[runtimes.runc]\npath = "/usr/local/sbin/runc"\n');
    assert.deepEqual((await loadConfig({ file: override, env: {} })).config.runtimes, {
      runc: { path: '/usr/local/sbin/runc' },
    });

    const empty = await writeConfig('[runtimes.runc]\n');
    assert.deepEqual((await loadConfig({ file: empty, env: {} })).config.runtimes, {
      runc: { path: '/usr/sbin/runc' },
    });
  });
});

describe('loadConfig rejects a bad file, naming the key and the file', () => {
  const cases: { name: string; text: string; key: string | undefined; message: RegExp }[] = [
    {
      name: 'unknown top-level key',
      text: 'log_levle = "info"\n',
      key: 'log_levle',
      message: /unknown key "log_levle"; did you mean "log_level"\?/,
    },
    {
      name: 'unknown nested key',
      text: '[network]\ncni_dir = "/etc/cni"\n',
      key: 'network.cni_dir',
      message: /unknown key "network.cni_dir"/,
    },
    {
      name: 'unknown key in a runtime',
      text: '[runtimes.runc]\nroot = "/x"\n',
      key: 'runtimes.runc.root',
      message: /unknown key "runtimes.runc.root"/,
    },
    {
      name: 'wrong type',
      text: '[image]\npause_image = 3\n',
      key: 'image.pause_image',
      message: /key "image.pause_image": expected string, got number$/,
    },
    {
      name: 'scalar where a table belongs',
      text: 'image = "x"\n',
      key: 'image',
      message: /key "image": expected a table, got string/,
    },
    {
      name: 'relative path',
      text: 'root_dir = "var/lib/crisp"\n',
      key: 'root_dir',
      message: /key "root_dir": must be an absolute path/,
    },
    {
      name: 'relative path in a list',
      text: '[network]\ncni_bin_dirs = ["/opt/cni/bin", "cni"]\n',
      key: 'network.cni_bin_dirs[1]',
      message: /must be an absolute path/,
    },
    {
      name: 'relative auth_file',
      text: '[image]\nauth_file = "auth.json"\n',
      key: 'image.auth_file',
      message: /must be an absolute path/,
    },
    {
      name: 'NUL in a path',
      text: 'conmon_path = "/usr/bin/con\\u0000mon"\n',
      key: 'conmon_path',
      message: /NUL/,
    },
    {
      name: 'relative unix:// path',
      text: 'listen = "unix://run/crisp.sock"\n',
      key: 'listen',
      message: /must be an absolute path/,
    },
    {
      name: 'socket_group that is no group name',
      text: 'socket_group = "wheel users"\n',
      key: 'socket_group',
      message: /must be a group name or a numeric gid/,
    },
    {
      name: 'non-unix listen scheme',
      text: 'listen = "tcp://127.0.0.1:1234"\n',
      key: 'listen',
      message: /only unix sockets/,
    },
    {
      name: 'bad enum',
      text: 'log_level = "verbose"\n',
      key: 'log_level',
      message:
        /key "log_level": must be one of trace, debug, info, warn, error, fatal, silent \(got "verbose"\)/,
    },
    {
      name: 'bad cgroup driver',
      text: 'cgroup_driver = "cgroupv2"\n',
      key: 'cgroup_driver',
      message: /must be one of cgroupfs, systemd/,
    },
    {
      name: 'metrics_address without port',
      text: 'metrics_address = "127.0.0.1"\n',
      key: 'metrics_address',
      message: /key "metrics_address": expected host:port/,
    },
    {
      name: 'metrics_address port out of range',
      text: 'metrics_address = "127.0.0.1:65536"\n',
      key: 'metrics_address',
      message: /port must be a number from 0 to 65535/,
    },
    {
      name: 'metrics_address IPv6 without brackets',
      text: 'metrics_address = "::1:9547"\n',
      key: 'metrics_address',
      message: /in brackets/,
    },
    {
      name: 'streaming address not an IP',
      text: '[streaming]\naddress = "localhost"\n',
      key: 'streaming.address',
      message: /must be an IPv4 or IPv6 address/,
    },
    {
      name: 'streaming port out of range',
      text: '[streaming]\nport = 70000\n',
      key: 'streaming.port',
      message: /must be at most 65535/,
    },
    {
      name: 'streaming port not whole',
      text: '[streaming]\nport = 80.5\n',
      key: 'streaming.port',
      message: /whole number/,
    },
    {
      name: 'default_runtime not in runtimes',
      text: 'default_runtime = "crun"\n',
      key: 'default_runtime',
      message: /"crun" is not defined under \[runtimes\] \(defined: runc\)/,
    },
    {
      name: 'runtime without path',
      text: '[runtimes.crun]\n',
      key: 'runtimes.crun.path',
      message: /required key is missing/,
    },
    {
      name: 'bad runtime name',
      text: '[runtimes."bad name"]\npath = "/x"\n',
      key: 'runtimes."bad name"',
      message: /key runtimes."bad name": invalid table name "bad name"/,
    },
    {
      name: 'root_dir equals run_dir',
      text: 'root_dir = "/srv/crisp"\nrun_dir = "/srv/crisp/"\n',
      key: 'run_dir',
      message: /must differ from root_dir/,
    },
    {
      name: 'empty cni_bin_dirs',
      text: '[network]\ncni_bin_dirs = []\n',
      key: 'network.cni_bin_dirs',
      message: /at least one/,
    },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const { err, file } = await rejectFile(c.text);
      assert.equal(err.key, c.key);
      assert.ok(err.message.startsWith(`${file}: `), err.message);
      assert.match(err.message, c.message);
      assert.ok(!err.message.includes('Invalid input'), `zod wording leaked: ${err.message}`);
    });
  }

  it('reports a TOML syntax error with line and column', async () => {
    const { err, file } = await rejectFile('log_level = "info"\nroot_dir = \n');
    assert.equal(err.key, undefined);
    assert.match(
      err.message,
      new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:2:\\d+: TOML syntax error: `),
    );
  });

  it('reports a duplicated key as a syntax error', async () => {
    const { err } = await rejectFile('log_level = "info"\nlog_level = "debug"\n');
    assert.match(err.message, /:2:1: TOML syntax error/);
  });

  it('lists every problem, unknown keys first', async () => {
    const { err } = await rejectFile('log_level = "loud"\nbogus = 1\n');
    assert.equal(err.problems.length, 2);
    assert.equal(err.key, 'bogus');
    assert.match(err.problems[0] ?? '', /unknown key "bogus"/);
    assert.match(err.problems[1] ?? '', /key "log_level"/);
  });

  it('rejects a bad value in the file even when a flag overrides it', async () => {
    const file = await writeConfig('log_level = "loud"\n');
    await assert.rejects(loadConfig({ file, env: {}, flags: { log_level: 'info' } }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /key "log_level"/);
      return true;
    });
  });

  it('rejects an explicitly given file that does not exist', async () => {
    const file = join(dir, 'missing.toml');
    await assert.rejects(loadConfig({ file, env: {} }), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.file, file);
      assert.match(err.message, new RegExp(`^${file}: config file not found \\(named by flag --config\\)`));
      return true;
    });
  });

  it('rejects a directory given as the config file', async () => {
    await assert.rejects(loadConfig({ file: dir, env: {} }), /is a directory/);
  });
});

describe('loadConfig rejects bad overrides, naming the variable or flag', () => {
  it('names the environment variable', async () => {
    const err = await rejectOverride({ CRISP_LOG_LEVEL: 'loud' });
    assert.equal(err.key, 'log_level');
    assert.equal(err.source, 'environment CRISP_LOG_LEVEL');
    assert.match(err.message, /^environment CRISP_LOG_LEVEL: must be one of trace, /);
  });

  it('names the flag', async () => {
    const err = await rejectOverride({ CRISP_ROOT_DIR: 'also/relative' }, { root_dir: 'relative' });
    assert.equal(err.key, 'root_dir');
    assert.match(err.message, /^flag --root: must be an absolute path/);
  });

  it('names the flag for a bad metrics address and bad listen path', async () => {
    assert.match(
      (await rejectOverride({}, { metrics_address: 'nope' })).message,
      /^flag --metrics-address: /,
    );
    assert.match((await rejectOverride({ CRISP_LISTEN: 'x.sock' })).message, /^environment CRISP_LISTEN: /);
    assert.match(
      (await rejectOverride({ CRISP_LOG_FORMAT: 'xml' })).message,
      /^environment CRISP_LOG_FORMAT: /,
    );
  });

  it('blames the override that made root_dir and run_dir equal', async () => {
    const err = await rejectOverride({}, { root_dir: '/srv/x' }, 'run_dir = "/srv/x"\n');
    assert.match(err.message, /^flag --root: must differ from root_dir/);
  });

  it('applies an empty environment variable (and rejects it where empty is not allowed)', async () => {
    const err = await rejectOverride({ CRISP_RUN_DIR: '' });
    assert.match(err.message, /^environment CRISP_RUN_DIR: must be an absolute path/);
    const file = await writeConfig('');
    assert.equal((await loadConfig({ file, env: { CRISP_METRICS_ADDRESS: '' } })).config.metrics_address, '');
  });
});
