/**
 * Request limits: the sizes and characters crisp accepts in CRI requests, and the checks that
 * apply them. A limit refuses only what the kernel, runc or CNI cannot take, what would be unsafe
 * for the node (unbounded sizes), or what containerd or CRI-O refuse too; docs/limits.md gives the
 * reason for each. A request beyond one is refused with INVALID_ARGUMENT naming the proto field,
 * before any engine sees it, so nothing is written or created.
 *
 * Sizes are UTF-8 bytes. Strings that reach a file name, a path, argv or a kernel interface must
 * not contain NUL. No string may arrive as invalid UTF-8: grpc-go refuses such a message outright
 * (so containerd and CRI-O never see one), and protobufjs instead puts U+FFFD in its place, so crisp
 * refuses U+FFFD rather than silently take a changed name.
 */
import { requireString } from './validate.js';
import { InvalidArgumentError } from '../errors.js';

export const LIMITS = {
  /** gRPC messages in either direction (kubelet's own limit for CRI messages). */
  messageBytes: 16 * 1024 * 1024,
  /** metadata name, namespace and uid (Kubernetes' names are at most 253, critest's ~100). */
  metadataBytes: 1024,
  /** Label and annotation keys: a 253-byte DNS prefix, "/", a 63-byte name. */
  keyBytes: 253 + 1 + 63,
  /** One label value (Kubernetes' own are ≤ 63; kubelet's io.kubernetes.* labels carry names ≤ 253). */
  labelValueBytes: 1024,
  /** Labels of one object, and label selectors. */
  labelEntries: 1024,
  /** All annotations of one object, keys and values (Kubernetes allows 256 KiB; kubelet adds a few). */
  annotationsTotalBytes: 512 * 1024,
  /** A path (log_directory, log_path, mount and device paths, working_dir): PATH_MAX. */
  pathBytes: 4096,
  /** Mounts and devices of one container. */
  mountEntries: 1024,
  /** One argv or environment string: the kernel's MAX_ARG_STRLEN. */
  argBytes: 128 * 1024,
  /** argv (command + args) and environment together: what execve takes with an 8 MiB stack. */
  argvEnvTotalBytes: 2 * 1024 * 1024,
  /** Image references and ids as a client may write them. */
  imageRefBytes: 1024,
  /** Any other string field (security profile names, cgroup parent, cpusets, auth fields, ...). */
  textBytes: 64 * 1024,
} as const;

/** Bytes of `s` in UTF-8. */
export function utf8Bytes(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

/** True when `s` fits in `max` UTF-8 bytes (without measuring when its length already says so). */
function fits(s: string, max: number): boolean {
  return s.length * 3 <= max || (s.length <= max && utf8Bytes(s) <= max);
}

/** Quotes `s` for a message, cut to a readable length. */
export function shown(s: string, max = 80): string {
  return s.length <= max ? JSON.stringify(s) : `${JSON.stringify(s.slice(0, max))}… (${s.length} characters)`;
}

/* eslint-disable no-control-regex -- these patterns exist to find control characters */
const CONTROL_OR_REPLACEMENT = /[\u0000-\u001f\u007f-\u009f\ufffd]/;
const NUL = /\u0000/;
/* eslint-enable no-control-regex */
const REPLACEMENT = /\ufffd/;

function tooLong(field: string, bytes: number, max: number): InvalidArgumentError {
  return new InvalidArgumentError(field, `is ${bytes} bytes long; crisp accepts at most ${max}`);
}

/** A string field of at most `max` bytes. */
function checkSize(value: string, field: string, max: number = LIMITS.textBytes): string {
  if (!fits(value, max)) throw tooLong(field, utf8Bytes(value), max);
  return value;
}

/** A string that reaches the kernel, a file or argv: bounded, no NUL. */
export function checkNoNul(value: string, field: string, max: number = LIMITS.textBytes): string {
  checkSize(value, field, max);
  if (NUL.test(value)) {
    throw new InvalidArgumentError(
      field,
      `${shown(value)} contains a NUL character, which no path or argument can hold`,
    );
  }
  return value;
}

/** Text: bounded, and not invalid UTF-8 on the wire (U+FFFD). Any other character passes. */
export function checkText(value: string, field: string, max: number): string {
  checkSize(value, field, max);
  if (REPLACEMENT.test(value)) {
    throw new InvalidArgumentError(
      field,
      `${shown(value)} was sent as invalid UTF-8 (U+FFFD stands where the bytes were; grpc-go refuses such a message outright); send UTF-8`,
    );
  }
  return value;
}

/**
 * A string that goes into a line of a protocol that cannot carry control characters (HTTP headers
 * for registry credentials, image references): bounded, no control characters, no U+FFFD.
 */
export function checkPrintable(value: string, field: string, max: number): string {
  checkSize(value, field, max);
  if (CONTROL_OR_REPLACEMENT.test(value)) {
    throw new InvalidArgumentError(
      field,
      `${shown(value)} contains a control character or invalid UTF-8; use printable UTF-8 only`,
    );
  }
  return value;
}

/** A path: bounded, no NUL; `absolute` also requires a leading "/". '' passes (unset). */
export function checkPath(value: string, field: string, opts: { absolute?: boolean } = {}): string {
  checkNoNul(value, field, LIMITS.pathBytes);
  if (opts.absolute === true && value !== '' && !value.startsWith('/')) {
    throw new InvalidArgumentError(field, `${shown(value)} must be an absolute path`);
  }
  return value;
}

/**
 * An object id or id prefix: required. Anything else about it is the lookup's business: a string
 * that is no crisp id (too long, odd characters) finds nothing, so status RPCs answer NOT_FOUND
 * and the idempotent Stop and Remove RPCs succeed, as containerd and CRI-O answer.
 */
export function requireId(value: string | null | undefined, field: string): string {
  return requireString(value, field);
}

/** CNI_ARGS joins `key=value` pairs with ";": a pod's name, namespace or uid can hold neither. */
const CNI_ARGS_RESERVED = /[;=]/;

/**
 * metadata.name (required), .namespace and .uid (may be empty, as in containerd and CRI-O): bounded,
 * valid UTF-8, no NUL (conmon gets the name in argv). `cniArgs` (a pod's metadata): no ";" or "="
 * either, which CNI_ARGS cannot carry (the plugins would read them as further arguments).
 */
export function checkMetadataName(
  raw: string | null | undefined,
  field: string,
  opts: { required: boolean; cniArgs: boolean },
): string {
  const value = opts.required ? requireString(raw, field) : (raw ?? '');
  checkText(value, field, LIMITS.metadataBytes);
  checkNoNul(value, field, LIMITS.metadataBytes);
  if (opts.cniArgs && CNI_ARGS_RESERVED.test(value)) {
    throw new InvalidArgumentError(
      field,
      `${shown(value)} contains ";" or "=", which the pod's CNI_ARGS (K8S_POD_NAME, K8S_POD_NAMESPACE, K8S_POD_UID) cannot carry`,
    );
  }
  return value;
}

/** Labels (and label selectors): at most 1024 entries, keys ≤ 317 bytes, values ≤ 1 KiB, valid UTF-8. */
export function checkLabels(labels: Readonly<Record<string, string>>, field: string): void {
  const keys = Object.keys(labels);
  if (keys.length > LIMITS.labelEntries) {
    throw new InvalidArgumentError(
      field,
      `has ${keys.length} entries; crisp accepts at most ${LIMITS.labelEntries} labels`,
    );
  }
  for (const key of keys) {
    checkKey(key, field);
    checkText(labels[key] ?? '', `${field}[${shown(key, 40)}]`, LIMITS.labelValueBytes);
  }
}

/** Annotations: keys as labels' (≤ 317 bytes, valid UTF-8); keys and values together ≤ 512 KiB. */
export function checkAnnotations(annotations: Readonly<Record<string, string>>, field: string): void {
  let total = 0;
  for (const key of Object.keys(annotations)) {
    checkKey(key, field);
    total += utf8Bytes(key) + utf8Bytes(annotations[key] ?? '');
    if (total > LIMITS.annotationsTotalBytes) {
      throw new InvalidArgumentError(
        field,
        `exceed ${LIMITS.annotationsTotalBytes} bytes (keys and values together); keep large data out of annotations`,
      );
    }
  }
}

function checkKey(key: string, field: string): void {
  checkText(key, `${field} key ${shown(key, 40)}`, LIMITS.keyBytes);
}

/** A generic string map (sysctls, unified, ...): entries as labels'; values any text without NUL. */
export function checkStringMap(map: Readonly<Record<string, string>>, field: string): void {
  const keys = Object.keys(map);
  if (keys.length > LIMITS.labelEntries) {
    throw new InvalidArgumentError(
      field,
      `has ${keys.length} entries; crisp accepts at most ${LIMITS.labelEntries}`,
    );
  }
  for (const key of keys) {
    checkKey(key, field);
    checkNoNul(map[key] ?? '', `${field}[${shown(key, 40)}]`);
  }
}

/**
 * argv and environment of one process: each string ≤ 128 KiB without NUL, all together ≤ 2 MiB;
 * environment keys non-empty (runc refuses a nameless variable), without NUL.
 */
export function checkArgvEnv(
  argv: readonly { list: readonly string[]; field: string }[],
  env: readonly { key: string; value: string }[] = [],
  envField = 'config.envs',
): void {
  let total = 0;
  const add = (bytes: number, field: string): void => {
    total += bytes + 1;
    if (total > LIMITS.argvEnvTotalBytes) {
      throw new InvalidArgumentError(
        field,
        `the command, arguments and environment exceed ${LIMITS.argvEnvTotalBytes} bytes together, more than a process can be started with`,
      );
    }
  };
  for (const { list, field } of argv) {
    list.forEach((arg, i) => {
      checkNoNul(arg, `${field}[${i}]`, LIMITS.argBytes);
      add(utf8Bytes(arg), field);
    });
  }
  env.forEach((e, i) => {
    const f = `${envField}[${i}]`;
    if (e.key === '') throw new InvalidArgumentError(`${f}.key`, 'required, got an empty string');
    checkNoNul(e.key, `${f}.key`, LIMITS.argBytes);
    checkNoNul(e.value, `${f}.value`, LIMITS.argBytes);
    add(utf8Bytes(e.key) + 1 + utf8Bytes(e.value), envField);
  });
}

/** At most `max` entries in a repeated field. */
export function checkCount(list: readonly unknown[], field: string, max: number): void {
  if (list.length > max) {
    throw new InvalidArgumentError(field, `has ${list.length} entries; crisp accepts at most ${max}`);
  }
}

/**
 * An image as a client names it (reference, id or id prefix): required, ≤ 1 KiB, no whitespace,
 * control characters or invalid UTF-8. Its grammar is the image engine's (image/reference.ts).
 */
export function requireImageSpec(raw: string | null | undefined, field: string): string {
  const value = checkPrintable(requireString(raw, field), field, LIMITS.imageRefBytes);
  if (/\s/.test(value)) {
    throw new InvalidArgumentError(field, `${shown(value)} contains whitespace; an image reference has none`);
  }
  return value;
}

/**
 * A timeout in whole seconds (int64 as a decimal string; '' is 0). A negative one is 0, as
 * containerd and CRI-O read it (StopContainer: SIGKILL at once; ExecSync: no timeout); one past
 * 2^53 - 1 seconds (285 million years) is that.
 */
export function timeoutSeconds(value: string): number {
  const n = BigInt(value === '' ? '0' : value);
  if (n < 0n) return 0;
  return n > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(n);
}
