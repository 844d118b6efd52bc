/**
 * The seccomp filter of a container (OCI `linux.seccomp`), resolved with I/O before the pure spec
 * builder runs (it reaches spec.ts through ContainerSpecResolved.seccomp).
 *
 * - unconfined, or a privileged container: no filter (containerd and CRI-O do the same).
 * - runtime-default: crisp's own profile, data/seccomp-default.json, in OCI `linux.seccomp`
 *   format. Its allow list was written for crisp, following the behaviour of the Docker/containerd
 *   default profile (moby/profiles seccomp/default.json, containerd contrib/seccomp): every
 *   syscall not listed fails with EPERM (defaultErrnoRet 1); `clone` is allowed only without
 *   namespace flags (arg 0 masked with 0x7E020000 must be 0), `clone3` fails with ENOSYS so libc
 *   falls back to clone, `socket` refuses AF_VSOCK, `personality` takes only the harmless values.
 *   Never allowed: keyctl/add_key/request_key, kexec_load, swapon/swapoff, userfaultfd, ... .
 *   The capability-gated rules of those profiles live in CAP_RULES below and are added when the
 *   container's final capability set holds the capability (CAP_SYS_ADMIN: unshare, setns, mount,
 *   sethostname, clone with namespace flags, ...; CAP_SYS_PTRACE: ptrace; CAP_SYS_BOOT: reboot;
 *   ...). The architectures are cut down to the host's family (x86_64 + x86 + x32, or aarch64 +
 *   arm). Syscall names a libseccomp does not know are skipped by runc.
 * - localhost: the JSON file at the absolute host path localhostRef, in OCI `linux.seccomp` format
 *   or the Docker/containers format (`archMap`, `syscalls[].includes/excludes`), which is converted
 *   the way containerd does: rules whose includes (caps, arches, minKernel) do not match, or
 *   whose excludes do, are dropped.
 */
import { readFile } from 'node:fs/promises';
import { release } from 'node:os';
import path from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { capabilitySet } from './spec.js';
import type {
  ContainerSecurityInput,
  OciSeccomp,
  OciSeccompArg,
  OciSeccompSyscall,
  SeccompInput,
} from './spec-types.js';

const LOCALHOST_FIELD = 'config.linux.security_context.seccomp.localhost_ref';
const DEFAULT_PROFILE_URL = new URL('../../../data/seccomp-default.json', import.meta.url);

/** Syscalls the default profile allows only with a capability (Docker's/containerd's gating). */
const CAP_RULES: readonly { cap: string; names: string[] }[] = [
  {
    cap: 'CAP_SYS_ADMIN',
    names: [
      'clone',
      'clone3',
      'fanotify_init',
      'fsconfig',
      'fsmount',
      'fsopen',
      'fspick',
      'lookup_dcookie',
      'mount',
      'mount_setattr',
      'move_mount',
      'name_to_handle_at',
      'open_tree',
      'quotactl',
      'quotactl_fd',
      'setdomainname',
      'sethostname',
      'setns',
      'syslog',
      'umount',
      'umount2',
      'unshare',
      'bpf',
      'perf_event_open',
    ],
  },
  { cap: 'CAP_BPF', names: ['bpf'] },
  { cap: 'CAP_PERFMON', names: ['perf_event_open'] },
  { cap: 'CAP_SYS_BOOT', names: ['reboot'] },
  { cap: 'CAP_SYS_CHROOT', names: ['chroot'] },
  { cap: 'CAP_SYS_MODULE', names: ['delete_module', 'init_module', 'finit_module'] },
  { cap: 'CAP_SYS_PACCT', names: ['acct'] },
  {
    cap: 'CAP_SYS_PTRACE',
    names: ['kcmp', 'pidfd_getfd', 'process_madvise', 'process_vm_readv', 'process_vm_writev', 'ptrace'],
  },
  { cap: 'CAP_SYS_RAWIO', names: ['iopl', 'ioperm'] },
  { cap: 'CAP_SYS_TIME', names: ['settimeofday', 'stime', 'clock_settime', 'clock_settime64'] },
  { cap: 'CAP_SYS_TTY_CONFIG', names: ['vhangup'] },
  { cap: 'CAP_SYS_NICE', names: ['get_mempolicy', 'mbind', 'set_mempolicy', 'set_mempolicy_home_node'] },
  { cap: 'CAP_SYSLOG', names: ['syslog'] },
];

/** The host's seccomp architectures (native first), and its Go arch name for Docker profiles. */
function hostArch(): { native: string; all: string[]; goArch: string } {
  if (process.arch === 'x64') {
    return {
      native: 'SCMP_ARCH_X86_64',
      all: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
      goArch: 'amd64',
    };
  }
  if (process.arch === 'arm64') {
    return { native: 'SCMP_ARCH_AARCH64', all: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'], goArch: 'arm64' };
  }
  return { native: '', all: [], goArch: process.arch };
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];

/** `a.b.c` kernel version comparison against the running kernel. */
function kernelAtLeast(min: string, running = release()): boolean {
  const parse = (v: string) =>
    v
      .split(/[.-]/)
      .slice(0, 3)
      .map((p) => Number.parseInt(p, 10) || 0);
  const a = parse(running);
  const b = parse(min);
  for (let i = 0; i < 3; i++) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (x !== y) return x > y;
  }
  return true;
}

/** Whether a Docker-format rule's includes match and its excludes do not. */
function ruleApplies(rule: Record<string, unknown>, caps: readonly string[], goArch: string): boolean {
  const inc = isObject(rule['includes']) ? rule['includes'] : {};
  const exc = isObject(rule['excludes']) ? rule['excludes'] : {};
  const incCaps = strings(inc['caps']);
  if (!incCaps.every((c) => caps.includes(c))) return false;
  const incArches = strings(inc['arches']);
  if (incArches.length > 0 && !incArches.includes(goArch)) return false;
  if (typeof inc['minKernel'] === 'string' && !kernelAtLeast(inc['minKernel'])) return false;
  if (strings(exc['caps']).some((c) => caps.includes(c))) return false;
  if (strings(exc['arches']).includes(goArch)) return false;
  return true;
}

function convertArgs(raw: unknown): OciSeccompArg[] | undefined {
  if (!Array.isArray(raw) || raw.length === 0) return undefined;
  return raw.filter(isObject).map((a) => {
    const arg: OciSeccompArg = {
      index: typeof a['index'] === 'number' ? a['index'] : 0,
      value: typeof a['value'] === 'number' ? a['value'] : 0,
      op: typeof a['op'] === 'string' ? a['op'] : '',
    };
    if (typeof a['valueTwo'] === 'number' && a['valueTwo'] !== 0) arg.valueTwo = a['valueTwo'];
    return arg;
  });
}

/**
 * A profile (OCI `linux.seccomp` or the Docker/containers format) as OCI `linux.seccomp` for a
 * container with capabilities `caps`. Throws a plain Error describing what is wrong.
 */
export function convertProfile(raw: unknown, caps: readonly string[]): OciSeccomp {
  if (!isObject(raw)) throw new Error('the profile is not a JSON object');
  const defaultAction = raw['defaultAction'];
  if (typeof defaultAction !== 'string' || defaultAction === '') {
    throw new Error('the profile has no defaultAction');
  }
  const arch = hostArch();
  const out: OciSeccomp = { defaultAction };
  if (typeof raw['defaultErrnoRet'] === 'number') out.defaultErrnoRet = raw['defaultErrnoRet'];
  let architectures = strings(raw['architectures']);
  if (architectures.length === 0 && Array.isArray(raw['archMap'])) {
    const entry = raw['archMap'].filter(isObject).find((e) => e['architecture'] === arch.native);
    if (entry) architectures = [arch.native, ...strings(entry['subArchitectures'])];
  }
  if (architectures.length > 0) out.architectures = architectures;
  const flags = strings(raw['flags']);
  if (flags.length > 0) out.flags = flags;
  if (raw['syscalls'] !== undefined && raw['syscalls'] !== null && !Array.isArray(raw['syscalls'])) {
    throw new Error('syscalls is not a list');
  }
  const syscalls: OciSeccompSyscall[] = [];
  for (const rule of Array.isArray(raw['syscalls']) ? raw['syscalls'] : []) {
    if (!isObject(rule)) throw new Error('a syscalls entry is not an object');
    if (!ruleApplies(rule, caps, arch.goArch)) continue;
    const names = strings(rule['names']);
    if (typeof rule['name'] === 'string') names.push(rule['name']);
    const action = rule['action'];
    if (names.length === 0) continue;
    if (typeof action !== 'string' || action === '') {
      throw new Error(`the rule for ${names.join(', ')} has no action`);
    }
    const call: OciSeccompSyscall = { names, action };
    if (typeof rule['errnoRet'] === 'number') call.errnoRet = rule['errnoRet'];
    const args = convertArgs(rule['args']);
    if (args) call.args = args;
    syscalls.push(call);
  }
  if (syscalls.length > 0) out.syscalls = syscalls;
  return out;
}

let defaultProfile: Promise<unknown> | undefined;

/** crisp's RuntimeDefault profile for a container with capabilities `caps`. */
export async function runtimeDefaultProfile(caps: readonly string[]): Promise<OciSeccomp> {
  defaultProfile ??= readFile(DEFAULT_PROFILE_URL, 'utf8').then((t): unknown => JSON.parse(t));
  const profile = convertProfile(await defaultProfile, caps);
  const arch = hostArch();
  if (arch.all.length > 0) {
    profile.architectures = (profile.architectures ?? []).filter((a) => arch.all.includes(a));
  }
  const granted = [...new Set(CAP_RULES.filter((r) => caps.includes(r.cap)).flatMap((r) => r.names))];
  if (granted.length > 0) {
    // An unconditional allow wins over the restricted clone / ENOSYS clone3 rules of the file.
    profile.syscalls = [
      ...(profile.syscalls ?? []).filter((s) => !s.names.some((n) => granted.includes(n))),
      { names: granted, action: 'SCMP_ACT_ALLOW' },
    ];
  }
  return profile;
}

/**
 * The seccomp filter for a container: undefined (no `linux.seccomp`) when unconfined or
 * privileged. A Localhost profile that cannot be used fails with an InvalidArgumentError naming
 * the field and the path.
 */
export async function resolveSeccomp(
  request: SeccompInput,
  caps: readonly string[],
  privileged: boolean,
): Promise<OciSeccomp | undefined> {
  if (privileged || request.profileType === 'unconfined') return undefined;
  if (request.profileType === 'runtime-default') return runtimeDefaultProfile(caps);
  const field = request.field ?? LOCALHOST_FIELD;
  const ref = request.localhostRef ?? '';
  const fail = (reason: string, cause?: unknown): never => {
    throw new InvalidArgumentError(
      field,
      `seccomp profile ${JSON.stringify(ref)}: ${reason}`,
      cause === undefined ? {} : { cause },
    );
  };
  if (!path.isAbsolute(ref)) fail('a Localhost profile must be an absolute host path');
  let text = '';
  try {
    text = await readFile(ref, 'utf8');
  } catch (err) {
    fail(`cannot read the file (${err instanceof Error ? err.message : String(err)})`, err);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    fail(`not valid JSON (${err instanceof Error ? err.message : String(err)})`, err);
  }
  try {
    return convertProfile(raw, caps);
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err), err);
  }
}

/** resolveSeccomp for a security context, with the same capability set spec.ts gives the process. */
export function seccompForContainer(
  security: ContainerSecurityInput | undefined,
  availableCapabilities: readonly string[] | undefined,
): Promise<OciSeccomp | undefined> {
  return resolveSeccomp(
    security?.seccomp ?? { profileType: 'unconfined' },
    capabilitySet(security, availableCapabilities),
    security?.privileged === true,
  );
}
