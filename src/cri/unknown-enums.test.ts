import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../errors.js';
import { loadCriDefinition } from './proto.js';
import { unknownEnumCheck } from './unknown-enums.js';

describe('unknown enum values', async () => {
  const check = unknownEnumCheck(await loadCriDefinition());

  it('passes requests whose enums are all known names', () => {
    check('CreateContainer', {
      pod_sandbox_id: 'p',
      config: {
        stop_signal: 'SIGTERM',
        mounts: [{ propagation: 'PROPAGATION_PRIVATE' }],
        labels: { a: 'b' },
        linux: {
          security_context: {
            namespace_options: { pid: 'POD' },
            seccomp: { profile_type: 'RuntimeDefault' },
          },
        },
      },
    });
    check('ListContainers', { filter: { state: { state: 'CONTAINER_RUNNING' } } });
    check('Version', {});
    check('NoSuchMethod', { anything: 1 });
  });

  it('refuses a number where a name was expected, naming the field', () => {
    const cases: [string, unknown, string][] = [
      ['CreateContainer', { config: { stop_signal: 99 } }, 'config.stop_signal'],
      ['CreateContainer', { config: { mounts: [{}, { propagation: 7 }] } }, 'config.mounts[1].propagation'],
      [
        'RunPodSandbox',
        { config: { linux: { security_context: { namespace_options: { network: 42 } } } } },
        'config.linux.security_context.namespace_options.network',
      ],
      ['RunPodSandbox', { config: { port_mappings: [{ protocol: 3 }] } }, 'config.port_mappings[0].protocol'],
      ['ListPodSandbox', { filter: { state: { state: -1 } } }, 'filter.state.state'],
    ];
    for (const [method, req, field] of cases) {
      assert.throws(
        () => {
          check(method, req);
        },
        (err: unknown) =>
          err instanceof InvalidArgumentError && err.field === field && /newer CRI/.test(err.message),
        field,
      );
    }
  });
});
