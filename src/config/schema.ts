/**
 * The crisp configuration schema: every key, its default and its validation, in one place.
 *
 * Each section is its own strict object (an unknown key is an error, never ignored), so adding a key
 * later means adding one line to one section here, one row in docs/config.md and one line in
 * deploy/crisp.toml; the tests check that the three stay in step.
 *
 * Validation messages are written for an operator. load.ts turns zod issues into a ConfigError that
 * names the key and where the value came from (file, environment variable or flag).
 */
import { isIP } from 'node:net';
import { posix } from 'node:path';
import { z } from 'zod';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export const CGROUP_DRIVERS = ['cgroupfs', 'systemd'] as const;
export type CgroupDriver = (typeof CGROUP_DRIVERS)[number];

export const RUNTIME_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Linux `sun_path` is 108 bytes including the terminating NUL. */
export const MAX_SOCKET_PATH_BYTES = 107;

const UNIX_SCHEME = 'unix://';

/** Removes `.`/`..` segments, doubled and trailing slashes, so equal directories compare equal. */
function normalizePath(path: string): string {
  const normalized = posix.normalize(path);
  return normalized.length > 1 && normalized.endsWith('/') ? normalized.slice(0, -1) : normalized;
}

/** The problem with `value` as an absolute path, or undefined when it is fine. */
function absolutePathProblem(value: string): string | undefined {
  if (value.includes('\0')) return 'must not contain a NUL character';
  if (!value.startsWith('/')) return `must be an absolute path (got ${JSON.stringify(value)})`;
  return undefined;
}

/** An absolute filesystem path, normalised. */
export const absolutePath = z
  .string()
  .superRefine((value, ctx) => {
    const problem = absolutePathProblem(value);
    if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, input: value });
  })
  .transform(normalizePath);

/** Empty (meaning "none") or an absolute path. */
const optionalAbsolutePath = z
  .string()
  .superRefine((value, ctx) => {
    if (value === '') return;
    const problem = absolutePathProblem(value);
    if (problem !== undefined) {
      ctx.addIssue({ code: 'custom', message: `${problem}; use "" for none`, input: value });
    }
  })
  .transform((value) => (value === '' ? '' : normalizePath(value)));

/** The CRI socket: a plain absolute path or `unix://` followed by one; normalised to the plain path. */
const listenAddress = z
  .string()
  .superRefine((value, ctx) => {
    const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(value);
    if (scheme !== null && !value.startsWith(UNIX_SCHEME)) {
      ctx.addIssue({
        code: 'custom',
        message: `only unix sockets are supported, not ${JSON.stringify(scheme[0])} (got ${JSON.stringify(value)})`,
        input: value,
      });
      return;
    }
    const path = value.startsWith(UNIX_SCHEME) ? value.slice(UNIX_SCHEME.length) : value;
    const problem = absolutePathProblem(path);
    if (problem !== undefined) {
      ctx.addIssue({ code: 'custom', message: problem, input: value });
      return;
    }
    const bytes = Buffer.byteLength(normalizePath(path));
    if (bytes > MAX_SOCKET_PATH_BYTES) {
      ctx.addIssue({
        code: 'custom',
        message: `socket path is ${bytes} bytes long; Linux allows at most ${MAX_SOCKET_PATH_BYTES}`,
        input: value,
      });
    }
  })
  .transform((value) =>
    normalizePath(value.startsWith(UNIX_SCHEME) ? value.slice(UNIX_SCHEME.length) : value),
  );

const DNS_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface HostPort {
  /** An IPv4 address, an IPv6 address without brackets, or a host name. */
  host: string;
  /** 0..65535; 0 asks the kernel for a free port. */
  port: number;
}

/**
 * Splits `host:port` (IPv6 as `[addr]:port`). Returns the problem as a string when the address is
 * malformed, so the schema can report it and the daemon can use the same function to listen.
 */
export function parseHostPort(address: string): HostPort | string {
  const example = 'expected host:port such as 127.0.0.1:9547 or [::1]:9547';
  let host: string;
  let portText: string;
  if (address.startsWith('[')) {
    const close = address.indexOf(']');
    if (close === -1 || address[close + 1] !== ':') return `${example} (got ${JSON.stringify(address)})`;
    host = address.slice(1, close);
    portText = address.slice(close + 2);
    if (isIP(host) !== 6) return `${JSON.stringify(host)} in brackets is not an IPv6 address`;
  } else {
    const colon = address.lastIndexOf(':');
    if (colon === -1) return `${example} (got ${JSON.stringify(address)})`;
    host = address.slice(0, colon);
    portText = address.slice(colon + 1);
    if (host.includes(':')) return `IPv6 addresses must be written in brackets, e.g. [::1]:9547`;
    if (host === '') return `the host is missing; use 0.0.0.0:${portText} to listen on all IPv4 addresses`;
    if (isIP(host) !== 4 && !DNS_NAME.test(host))
      return `${JSON.stringify(host)} is not an IP address or host name`;
  }
  if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) {
    return `port must be a number from 0 to 65535 (got ${JSON.stringify(portText)})`;
  }
  return { host, port: Number(portText) };
}

/** `host:port`, or "" to disable the endpoint. */
const optionalHostPort = z.string().superRefine((value, ctx) => {
  if (value === '') return;
  const parsed = parseHostPort(value);
  if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed, input: value });
});

const ipAddress = z.string().superRefine((value, ctx) => {
  if (isIP(value) === 0) {
    ctx.addIssue({
      code: 'custom',
      message: `must be an IPv4 or IPv6 address, e.g. 127.0.0.1 or ::1 (got ${JSON.stringify(value)})`,
      input: value,
    });
  }
});

const port = z.number().int().min(0).max(65535);

/** "" (the daemon's own group), a group name, or a numeric gid; looked up on the node at start. */
const groupName = z.string().superRefine((value, ctx) => {
  if (value === '' || /^\d+$/.test(value) || /^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(value)) return;
  ctx.addIssue({
    code: 'custom',
    message: `must be a group name or a numeric gid, or "" for root's group (got ${JSON.stringify(value)})`,
    input: value,
  });
});

const runtimeName = z.string().regex(RUNTIME_NAME_PATTERN, {
  error: 'runtime names start with a letter or digit and contain only letters, digits, "_", "." and "-"',
});

export const runtimeSchema = z
  .object({
    /** The OCI runtime binary (runc-compatible command line). */
    path: absolutePath,
  })
  .strict();

/** The runtimes a config always has; a [runtimes.NAME] table in the file is merged over these. */
export const DEFAULT_RUNTIMES: Readonly<Record<string, z.input<typeof runtimeSchema>>> = {
  runc: { path: '/usr/sbin/runc' },
};

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** Merges the file's [runtimes.*] tables over DEFAULT_RUNTIMES, key by key, before validation. */
function withDefaultRuntimes(input: unknown): unknown {
  if (input === undefined) input = {};
  if (!isTable(input)) return input; // let the schema report the wrong type
  const merged: Record<string, unknown> = {};
  for (const [name, runtime] of Object.entries(DEFAULT_RUNTIMES)) merged[name] = { ...runtime };
  for (const [name, runtime] of Object.entries(input)) {
    const base = merged[name];
    merged[name] = isTable(base) && isTable(runtime) ? { ...base, ...runtime } : runtime;
  }
  return merged;
}

export const imageSchema = z
  .object({
    registries_config: absolutePath.default('/etc/containers/registries.conf'),
    auth_file: optionalAbsolutePath.default(''),
    pause_image: z.string().default(''),
    pull_timeout_seconds: z.number().int().min(1).max(86_400).default(600),
  })
  .strict();

export const networkSchema = z
  .object({
    cni_conf_dir: absolutePath.default('/etc/cni/net.d'),
    cni_bin_dirs: z
      .array(absolutePath)
      .min(1, { error: 'must list at least one directory' })
      .default(['/opt/cni/bin', '/usr/lib/cni']),
    plugin_timeout_seconds: z.number().int().min(1).max(600).default(30),
  })
  .strict();

export const streamingSchema = z
  .object({
    address: ipAddress.default('127.0.0.1'),
    port: port.default(0),
    tls_cert_file: optionalAbsolutePath.default(''),
    tls_key_file: optionalAbsolutePath.default(''),
    token_ttl_seconds: z.number().int().min(1).max(3600).default(60),
    idle_timeout_seconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 24 * 3600)
      .default(14_400),
  })
  .strict()
  .superRefine((s, ctx) => {
    if ((s.tls_cert_file === '') !== (s.tls_key_file === '')) {
      ctx.addIssue({
        code: 'custom',
        path: [s.tls_cert_file === '' ? 'tls_cert_file' : 'tls_key_file'],
        message: 'tls_cert_file and tls_key_file go together: set both for TLS, or neither',
      });
    }
  });

export const configSchema = z
  .object({
    listen: listenAddress.default('/run/crisp/crisp.sock'),
    socket_group: groupName.default(''),
    root_dir: absolutePath.default('/var/lib/crisp'),
    run_dir: absolutePath.default('/run/crisp'),
    log_level: z.enum(LOG_LEVELS).default('info'),
    log_format: z.enum(LOG_FORMATS).default('auto'),
    metrics_address: optionalHostPort.default('127.0.0.1:9547'),
    cgroup_driver: z.enum(CGROUP_DRIVERS).default('cgroupfs'),
    conmon_path: absolutePath.default('/usr/bin/conmon'),
    oom_score_adj_clamp: z.enum(['auto', 'always', 'never']).default('auto'),
    default_runtime: z.string().default('runc'),
    pids_limit: z.number().int().min(-1).max(4_194_304).default(0),
    tolerate_missing_hugetlb_controller: z.boolean().default(true),
    runtimes: z.preprocess(withDefaultRuntimes, z.record(runtimeName, runtimeSchema)),
    image: imageSchema.prefault({}),
    network: networkSchema.prefault({}),
    streaming: streamingSchema.prefault({}),
  })
  .strict()
  .superRefine((config, ctx) => {
    if (config.root_dir === config.run_dir) {
      ctx.addIssue({
        code: 'custom',
        path: ['run_dir'],
        message: `must differ from root_dir (both are ${JSON.stringify(config.run_dir)})`,
        input: config.run_dir,
        params: { related: ['root_dir'] },
      });
    }
    if (!Object.hasOwn(config.runtimes, config.default_runtime)) {
      const defined = Object.keys(config.runtimes).sort().join(', ');
      ctx.addIssue({
        code: 'custom',
        path: ['default_runtime'],
        message: `${JSON.stringify(config.default_runtime)} is not defined under [runtimes] (defined: ${defined})`,
        input: config.default_runtime,
        params: { related: ['runtimes'] },
      });
    }
  });

/** The validated, fully defaulted configuration. */
export type CrispConfig = z.output<typeof configSchema>;
/** What a config file may contain (every key optional). */
export type CrispConfigInput = z.input<typeof configSchema>;

/** A fresh copy of the built-in defaults. */
export function defaultConfig(): CrispConfig {
  return configSchema.parse({});
}
