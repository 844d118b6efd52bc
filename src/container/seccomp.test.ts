import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InvalidArgumentError } from '../errors.js';
import { convertProfile, resolveSeccomp, runtimeDefaultProfile, seccompForContainer } from './seccomp.js';
import { DEFAULT_CAPABILITIES } from './spec.js';
import type { OciSeccomp } from './spec-types.js';

const FIELD = 'config.linux.security_context.seccomp.localhost_ref';

/** The action the profile takes for `name` with no argument filter, or the default. */
function ruleFor(p: OciSeccomp, name: string) {
  return p.syscalls?.filter((s) => s.names.includes(name)) ?? [];
}
const allowedPlainly = (p: OciSeccomp, name: string) =>
  ruleFor(p, name).some((s) => s.action === 'SCMP_ACT_ALLOW' && s.args === undefined);

describe('resolveSeccomp', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'crisp-seccomp-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('unconfined and privileged mean no filter', async () => {
    assert.equal(await resolveSeccomp({ profileType: 'unconfined' }, [], false), undefined);
    assert.equal(await resolveSeccomp({ profileType: 'runtime-default' }, [], true), undefined);
    assert.equal(
      await resolveSeccomp({ profileType: 'localhost', localhostRef: '/nonexistent' }, [], true),
      undefined,
    );
    assert.equal(await seccompForContainer(undefined, undefined), undefined, 'unset = unconfined');
  });

  it('runtime-default: EPERM by default, the usual syscalls allowed, the dangerous ones not', async () => {
    const p = await runtimeDefaultProfile(DEFAULT_CAPABILITIES);
    assert.equal(p.defaultAction, 'SCMP_ACT_ERRNO');
    assert.equal(p.defaultErrnoRet, 1);
    if (process.arch === 'x64')
      assert.deepEqual(p.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    for (const ok of ['read', 'write', 'openat', 'execve', 'mmap', 'exit_group', 'wait4', 'kill']) {
      assert.ok(allowedPlainly(p, ok), ok);
    }
    for (const bad of [
      'unshare',
      'mount',
      'keyctl',
      'add_key',
      'request_key',
      'ptrace',
      'reboot',
      'swapon',
      'init_module',
      'kexec_load',
      'bpf',
      'perf_event_open',
      'sethostname',
      'setdomainname',
      'setns',
    ]) {
      assert.deepEqual(ruleFor(p, bad), [], bad);
    }
    assert.deepEqual(ruleFor(p, 'clone'), [
      {
        names: ['clone'],
        action: 'SCMP_ACT_ALLOW',
        args: [{ index: 0, value: 2114060288, op: 'SCMP_CMP_MASKED_EQ' }],
      },
    ]);
    assert.deepEqual(ruleFor(p, 'clone3'), [{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }]);
  });

  it('runtime-default with CAP_SYS_ADMIN allows namespaces, mount and hostnames; keyctl never', async () => {
    const p = await runtimeDefaultProfile([...DEFAULT_CAPABILITIES, 'CAP_SYS_ADMIN', 'CAP_SYS_PTRACE']);
    for (const ok of [
      'unshare',
      'setns',
      'mount',
      'sethostname',
      'setdomainname',
      'clone',
      'clone3',
      'ptrace',
    ]) {
      assert.ok(allowedPlainly(p, ok), ok);
    }
    assert.equal(ruleFor(p, 'clone').length, 1, 'the restricted clone rule is gone');
    assert.equal(ruleFor(p, 'clone3').length, 1, 'the ENOSYS clone3 rule is gone');
    for (const bad of ['keyctl', 'kexec_load', 'reboot', 'swapon', 'init_module'])
      assert.deepEqual(ruleFor(p, bad), [], bad);
  });

  it('localhost: reads an OCI profile', async () => {
    const file = join(dir, 'oci.json');
    const oci: OciSeccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      architectures: ['SCMP_ARCH_X86_64'],
      syscalls: [{ names: ['sethostname'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }],
    };
    await writeFile(file, JSON.stringify(oci));
    assert.deepEqual(await resolveSeccomp({ profileType: 'localhost', localhostRef: file }, [], false), oci);
  });

  it('localhost: converts the Docker/containers format (includes, excludes, archMap)', async () => {
    const file = join(dir, 'docker.json');
    const goArch = process.arch === 'x64' ? 'amd64' : process.arch;
    await writeFile(
      file,
      JSON.stringify({
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrnoRet: 38,
        archMap: [
          { architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86', 'SCMP_ARCH_X32'] },
          { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] },
        ],
        syscalls: [
          {
            names: ['read', 'write'],
            action: 'SCMP_ACT_ALLOW',
            args: [],
            comment: 'x',
            includes: {},
            excludes: {},
          },
          { names: ['mount'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
          { names: ['personality'], action: 'SCMP_ACT_ALLOW', excludes: { caps: ['CAP_CHOWN'] } },
          { names: ['arch_only'], action: 'SCMP_ACT_ALLOW', includes: { arches: [goArch] } },
          { names: ['other_arch'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['s390x'] } },
          { names: ['old'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '2.6' } },
          { names: ['future'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '99.0' } },
          {
            names: ['clone'],
            action: 'SCMP_ACT_ALLOW',
            args: [{ index: 0, value: 2114060288, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }],
          },
        ],
      }),
    );
    const p = await resolveSeccomp({ profileType: 'localhost', localhostRef: file }, ['CAP_CHOWN'], false);
    assert.ok(p);
    assert.equal(p.defaultErrnoRet, 38);
    if (process.arch === 'x64')
      assert.deepEqual(p.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    assert.deepEqual(
      p.syscalls?.map((s) => s.names.join(',')),
      ['read,write', 'arch_only', 'old', 'clone'],
    );
    const calls = p.syscalls ?? [];
    assert.deepEqual(calls[0], { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' });
    assert.deepEqual(calls[3]?.args, [{ index: 0, value: 2114060288, op: 'SCMP_CMP_MASKED_EQ' }]);
    const admin = await resolveSeccomp(
      { profileType: 'localhost', localhostRef: file },
      ['CAP_SYS_ADMIN'],
      false,
    );
    assert.ok(admin?.syscalls?.some((s) => s.names.includes('mount')));
    assert.ok(admin?.syscalls?.some((s) => s.names.includes('personality')));
  });

  it('localhost: bad profiles fail with INVALID_ARGUMENT naming the field and the path', async () => {
    const cases: [string, string, RegExp][] = [
      ['relative/profile.json', '', /absolute/],
      [join(dir, 'missing.json'), '', /cannot read.*ENOENT/],
      [join(dir, 'bad.json'), '{ not json', /not valid JSON/],
      [join(dir, 'nodefault.json'), '{"syscalls": []}', /no defaultAction/],
      [join(dir, 'array.json'), '[]', /not a JSON object/],
      [join(dir, 'badsyscalls.json'), '{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": 3}', /not a list/],
    ];
    for (const [ref, content, reason] of cases) {
      if (content !== '') await writeFile(ref, content);
      await assert.rejects(
        resolveSeccomp({ profileType: 'localhost', localhostRef: ref }, [], false),
        (err) => {
          assert.ok(err instanceof InvalidArgumentError, String(err));
          assert.equal(err.field, FIELD);
          assert.ok(err.message.includes(FIELD) && err.message.includes(ref), err.message);
          assert.match(err.message, reason);
          return true;
        },
      );
    }
    await assert.rejects(
      resolveSeccomp(
        {
          profileType: 'localhost',
          localhostRef: join(dir, 'missing.json'),
          field: 'x.seccomp_profile_path',
        },
        [],
        false,
      ),
      /invalid x\.seccomp_profile_path/,
    );
  });

  it('convertProfile keeps defaultAction-only profiles minimal', () => {
    assert.deepEqual(convertProfile({ defaultAction: 'SCMP_ACT_ALLOW' }, []), {
      defaultAction: 'SCMP_ACT_ALLOW',
    });
  });
});
