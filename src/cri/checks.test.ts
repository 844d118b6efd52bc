import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../errors.js';
import type { ContainerConfig__Output } from '../generated/runtime/v1/ContainerConfig.js';
import type { ContainerFilter__Output } from '../generated/runtime/v1/ContainerFilter.js';
import type { LinuxContainerResources__Output } from '../generated/runtime/v1/LinuxContainerResources.js';
import type { PodSandboxConfig__Output } from '../generated/runtime/v1/PodSandboxConfig.js';
import { checkAuth, checkContainerConfig, checkFilter, checkPodSandboxConfig } from './checks.js';
import { resourcesFromCri } from './convert/resources.js';

function refuses(fn: () => unknown, field: string, re?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof InvalidArgumentError, String(err));
    assert.equal(err.field, field);
    if (re) assert.match(err.message, re);
    return true;
  });
}

/** A pod config as grpc-js decodes kubelet's (defaults filled). */
function pod(over: Partial<PodSandboxConfig__Output> = {}): PodSandboxConfig__Output {
  return {
    metadata: {
      name: 'web-0',
      namespace: 'default',
      uid: 'f3b1c2d4-0000-4e5f-8a9b-0123456789ab',
      attempt: 0,
    },
    hostname: 'web-0',
    log_directory: '/var/log/pods/default_web-0_f3b1c2d4',
    dns_config: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] },
    port_mappings: [],
    labels: { app: 'web', 'io.kubernetes.pod.name': 'web-0' },
    annotations: { 'kubernetes.io/config.source': 'api' },
    linux: null,
    windows: null,
    ...over,
  };
}

function resources(over: Partial<LinuxContainerResources__Output> = {}): LinuxContainerResources__Output {
  return {
    cpu_period: '100000',
    cpu_quota: '50000',
    cpu_shares: '512',
    memory_limit_in_bytes: String(64 * 1024 * 1024),
    oom_score_adj: '-997',
    cpuset_cpus: '0-1',
    cpuset_mems: '',
    hugepage_limits: [{ page_size: '2MB', limit: '0' }],
    unified: {},
    memory_swap_limit_in_bytes: '',
    ...over,
  };
}

function ctr(over: Partial<ContainerConfig__Output> = {}): ContainerConfig__Output {
  return {
    metadata: { name: 'app', attempt: 0 },
    image: {
      image: 'busybox',
      annotations: {},
      user_specified_image: 'busybox',
      runtime_handler: '',
      image_ref: '',
    },
    command: ['sh', '-c', 'sleep 1000'],
    args: [],
    working_dir: '/srv',
    envs: [{ key: 'PATH', value: Buffer.from('/bin') }],
    mounts: [],
    devices: [],
    labels: {},
    annotations: {},
    log_path: 'app/0.log',
    stdin: false,
    stdin_once: false,
    tty: false,
    linux: null,
    windows: null,
    CDI_devices: [],
    stop_signal: 'RUNTIME_DEFAULT',
    ...over,
  };
}

describe('pod sandbox config checks', () => {
  it('passes what kubelet sends', () => {
    checkPodSandboxConfig(pod(), 'config');
  });

  it('passes what critest and crictl send, and what containerd and CRI-O take', () => {
    // critest: no hostname, names longer than 64 characters, mixed case.
    const long = `create-PodSandbox-for-container-${'a'.repeat(36)}`;
    checkPodSandboxConfig(
      pod({ hostname: '', metadata: { name: long, namespace: 'cri-test-namespace', uid: 'x', attempt: 0 } }),
      'config',
    );
    // Hand-written crictl configs: no namespace or uid, "_" in names.
    checkPodSandboxConfig(
      pod({ metadata: { name: 'my_pod', namespace: '', uid: '', attempt: 0 } }),
      'config',
    );
    // Host names the kernel takes though they are no RFC 1123 label.
    checkPodSandboxConfig(pod({ hostname: 'My_Host' }), 'config');
    // DNS entries go into the pod's resolv.conf as given (containerd and CRI-O write them so).
    checkPodSandboxConfig(
      pod({ dns_config: { servers: ['dns.local'], searches: ['a b'], options: ['edns0'] } }),
      'config',
    );
    // Port mappings without a host port are information only, whatever they hold.
    checkPodSandboxConfig(
      pod({ port_mappings: [{ protocol: 'TCP', container_port: 0, host_port: 0, host_ip: 'any' }] }),
      'config',
    );
    // Control characters in labels and annotations (valid UTF-8 all the same).
    checkPodSandboxConfig(pod({ labels: { '': 'tab\there' }, annotations: { 'a\u0001': 'v' } }), 'config');
  });

  it('names the field of each refusal', () => {
    refuses(() => {
      checkPodSandboxConfig(pod({ metadata: null }), 'config');
    }, 'config.metadata');
    refuses(() => {
      checkPodSandboxConfig(
        pod({ metadata: { name: 'x'.repeat(1 << 20), namespace: 'a', uid: 'b', attempt: 0 } }),
        'config',
      );
    }, 'config.metadata.name');
    refuses(
      () => {
        checkPodSandboxConfig(pod({ hostname: 'a\ufffd' }), 'config');
      },
      'config.hostname',
      /invalid UTF-8/,
    );
    refuses(
      () => {
        checkPodSandboxConfig(pod({ hostname: 'h'.repeat(65) }), 'config');
      },
      'config.hostname',
      /65 bytes long; the kernel takes host names of at most 64/,
    );
    refuses(
      () => {
        checkPodSandboxConfig(pod({ log_directory: 'relative' }), 'config');
      },
      'config.log_directory',
      /absolute/,
    );
    refuses(
      () => {
        checkPodSandboxConfig(
          pod({ metadata: { name: 'a;IP=1', namespace: '', uid: '', attempt: 0 } }),
          'config',
        );
      },
      'config.metadata.name',
      /CNI_ARGS/,
    );
    refuses(() => {
      checkPodSandboxConfig(
        pod({
          port_mappings: [{ protocol: 'TCP', container_port: 80, host_port: 8080, host_ip: 'not-an-ip' }],
        }),
        'config',
      );
    }, 'config.port_mappings[0].host_ip');
    const labels = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, 'v']));
    refuses(
      () => {
        checkPodSandboxConfig(pod({ labels }), 'config');
      },
      'config.labels',
      /10000 entries/,
    );
  });

  it('checks the pod resources kubelet may send', () => {
    const linux = {
      cgroup_parent: 'kubepods-pod1.slice',
      security_context: null,
      sysctls: {},
      overhead: null,
      resources: resources({ cpu_shares: '-2' }),
    };
    refuses(
      () => {
        checkPodSandboxConfig(pod({ linux }), 'config');
      },
      'config.linux.resources.cpu_shares',
      /-2 is out of range/,
    );
  });
});

describe('container config checks', () => {
  it('passes what kubelet sends', () => {
    checkContainerConfig(ctr(), 'config');
  });

  it('refuses relative or NUL paths, naming the field', () => {
    refuses(
      () => {
        checkContainerConfig(ctr({ working_dir: 'srv' }), 'config');
      },
      'config.working_dir',
      /absolute/,
    );
    const mount = {
      container_path: '/data',
      host_path: '/var/lib/x',
      readonly: false,
      selinux_relabel: false,
      propagation: 'PROPAGATION_PRIVATE' as const,
      uidMappings: [],
      gidMappings: [],
      recursive_read_only: false,
      image: null,
      image_sub_path: '',
    };
    // A relative container path is read from the container's root (create-container.ts), as runc does.
    checkContainerConfig(ctr({ mounts: [{ ...mount, container_path: 'data' }] }), 'config');
    refuses(() => {
      checkContainerConfig(ctr({ mounts: [{ ...mount, container_path: '' }] }), 'config');
    }, 'config.mounts[0].container_path');
    refuses(
      () => {
        checkContainerConfig(ctr({ mounts: [{ ...mount, host_path: '/a\u0000' }] }), 'config');
      },
      'config.mounts[0].host_path',
      /NUL/,
    );
    refuses(
      () => {
        checkContainerConfig(ctr({ log_path: 'a\u0000.log' }), 'config');
      },
      'config.log_path',
      /NUL/,
    );
    refuses(
      () => {
        checkContainerConfig(ctr({ command: ['a\u0000'] }), 'config');
      },
      'config.command[0]',
      /NUL/,
    );
    refuses(() => {
      checkContainerConfig(ctr({ envs: [{ key: 'A', value: Buffer.from([0x61, 0, 0x62]) }] }), 'config');
    }, 'config.envs[0].value');
    refuses(() => {
      checkContainerConfig(ctr({ image: null }), 'config');
    }, 'config.image');
    refuses(() => {
      checkContainerConfig(ctr({ metadata: { name: '', attempt: 0 } }), 'config');
    }, 'config.metadata.name');
    // Names as containerd and CRI-O take them.
    checkContainerConfig(ctr({ metadata: { name: 'a_b;c=d', attempt: 0 } }), 'config');
    // An env key with "=" is named by what precedes it (container/args.ts), as in containerd.
    checkContainerConfig(ctr({ envs: [{ key: 'A=B', value: Buffer.from('c') }] }), 'config');
  });

  it('refuses resource values no kernel accepts', () => {
    const with_ = (r: Partial<LinuxContainerResources__Output>) =>
      ctr({ linux: { resources: resources(r), security_context: null } });
    checkContainerConfig(with_({}), 'config');
    checkContainerConfig(with_({ cpu_quota: '-1' }), 'config');
    const f = 'config.linux.resources';
    refuses(() => {
      checkContainerConfig(with_({ cpu_shares: '-1' }), 'config');
    }, `${f}.cpu_shares`);
    refuses(() => {
      checkContainerConfig(with_({ cpu_shares: '262145' }), 'config');
    }, `${f}.cpu_shares`);
    refuses(() => {
      checkContainerConfig(with_({ cpu_quota: '-5' }), 'config');
    }, `${f}.cpu_quota`);
    refuses(() => {
      checkContainerConfig(with_({ cpu_period: '10' }), 'config');
    }, `${f}.cpu_period`);
    refuses(() => {
      checkContainerConfig(with_({ cpu_period: '9223372036854775807' }), 'config');
    }, `${f}.cpu_period`);
    refuses(() => {
      checkContainerConfig(with_({ memory_limit_in_bytes: '-1' }), 'config');
    }, `${f}.memory_limit_in_bytes`);
    refuses(() => {
      checkContainerConfig(with_({ memory_swap_limit_in_bytes: '-2' }), 'config');
    }, `${f}.memory_swap_limit_in_bytes`);
    refuses(() => {
      checkContainerConfig(with_({ oom_score_adj: '1001' }), 'config');
    }, `${f}.oom_score_adj`);
    refuses(() => {
      checkContainerConfig(with_({ cpuset_cpus: '0-3;rm' }), 'config');
    }, `${f}.cpuset_cpus`);
    refuses(() => {
      checkContainerConfig(with_({ hugepage_limits: [{ page_size: '../2MB', limit: '1' }] }), 'config');
    }, `${f}.hugepage_limits[0].page_size`);
    refuses(() => {
      checkContainerConfig(with_({ hugepage_limits: [{ page_size: '2MB', limit: '-1' }] }), 'config');
    }, `${f}.hugepage_limits[0].limit`);
    refuses(() => {
      checkContainerConfig(with_({ unified: { '../../x': '1' } }), 'config');
    }, `${f}.unified["../../x"]`);
  });

  it('keeps the unset values unset', () => {
    const r = resourcesFromCri(
      resources({ cpu_shares: '0', memory_limit_in_bytes: '', oom_score_adj: '0' }),
      'linux',
    );
    assert.equal(r.cpuShares, undefined);
    assert.equal(r.memoryLimitBytes, undefined);
    assert.equal(r.oomScoreAdj, undefined);
  });
});

describe('filter and auth checks', () => {
  it('bounds filters and credentials', () => {
    const filter = (id: string, label_selector: Record<string, string>): ContainerFilter__Output => ({
      id,
      state: null,
      pod_sandbox_id: '',
      label_selector,
    });
    checkFilter(filter('abc', { app: 'web' }));
    // An id that is no crisp id matches nothing; it is not refused.
    checkFilter(filter('x'.repeat(100), {}));
    refuses(() => {
      checkFilter(filter('', { k: 'v'.repeat(2000) }));
    }, 'filter.label_selector["k"]');
    const auth = {
      username: 'u',
      password: 'p',
      auth: '',
      server_address: '',
      identity_token: '',
      registry_token: '',
    };
    checkAuth(auth);
    refuses(() => {
      checkAuth({ ...auth, registry_token: 't'.repeat(65 * 1024) });
    }, 'auth.registry_token');
    // Credentials travel in HTTP headers, which cannot carry a line break.
    refuses(
      () => {
        checkAuth({ ...auth, registry_token: 'tok\r\nX-Evil: 1' });
      },
      'auth.registry_token',
      /control character/,
    );
  });
});
