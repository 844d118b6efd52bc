/**
 * Request limits: the sizes and characters crisp accepts in CRI requests, and the checks that
 * apply them. Each limit is far above what kubelet sends (docs/limits.md says why each value was
 * chosen); a request beyond one is refused with INVALID_ARGUMENT naming the proto field, before
 * any engine sees it, so nothing is written or created.
 *
 * Sizes are UTF-8 bytes. Strings that reach a file name, a path, argv or a kernel interface must
 * not contain NUL; names and keys must not contain control characters or U+FFFD (what protobufjs
 * puts in place of invalid UTF-8, so a name that arrived as invalid UTF-8 is refused, never
 * silently changed).
 */
import { requireString } from './validate.js';
import { InvalidArgumentError } from '../errors.js';

export const LIMITS = {
  /** gRPC messages in either direction (kubelet's own limit for CRI messages). */
  messageBytes: 16 * 1024 * 1024,
  /** pod_sandbox_id, container_id and filters' ids: ids are 64 hex digits, prefixes shorter. */
  idBytes: 64,
  /** metadata name, namespace and uid: a DNS-1123 subdomain is at most 253. */
  metadataBytes: 253,
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

/** A name or key: bounded, no control characters, no U+FFFD (invalid UTF-8 on the wire). */
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

/** An object id or id prefix: required, at most 64 bytes, printable. */
export function requireId(value: string | null | undefined, field: string): string {
  return checkId(requireString(value, field), field);
}

/** An optional id (filters): '' passes. */
export function checkId(value: string, field: string): string {
  if (!fits(value, LIMITS.idBytes)) {
    throw new InvalidArgumentError(
      field,
      `${shown(value, 16)} is not an id: ids are 64 hex digits (or a shorter unique prefix)`,
    );
  }
  return checkPrintable(value, field, LIMITS.idBytes);
}

const METADATA_NAME = /^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/;

/**
 * metadata.name, .namespace and .uid: required, 1..253 letters, digits, "." and "-", starting and
 * ending with a letter or digit, as Kubernetes names (DNS-1123) and uids are. No "_": crisp joins
 * these with "_" into the names it reserves, so an "_" inside one could make two pods collide.
 */
export function requireMetadataName(raw: string | null | undefined, field: string): string {
  const value = checkPrintable(requireString(raw, field), field, LIMITS.metadataBytes);
  if (!METADATA_NAME.test(value)) {
    throw new InvalidArgumentError(
      field,
      `${shown(value)} is not a valid name: use letters, digits, "." and "-", starting and ending with a letter or digit (Kubernetes names are DNS-1123)`,
    );
  }
  return value;
}

/** Labels (and label selectors): at most 1024 entries, keys ≤ 317 bytes, values ≤ 1 KiB, printable. */
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
    checkPrintable(labels[key] ?? '', `${field}[${shown(key, 40)}]`, LIMITS.labelValueBytes);
  }
}

/** Annotations: keys as labels' (printable, ≤ 317 bytes); keys and values together ≤ 512 KiB. */
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
  if (key === '') throw new InvalidArgumentError(field, 'has an empty key');
  checkPrintable(key, `${field} key ${shown(key, 40)}`, LIMITS.keyBytes);
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
 * environment keys non-empty, without "=" or NUL. `env` values may be Buffers (KeyValue.value).
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
    if (e.key.includes('=')) {
      throw new InvalidArgumentError(
        `${f}.key`,
        `${shown(e.key)} contains "=", which ends a variable's name`,
      );
    }
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
 * A timeout in whole seconds (int64 as a decimal string; '' is 0). Negative values are refused
 * rather than read as 0: kubelet never sends one, and 0 means "kill at once" (StopContainer) or
 * "no timeout" (ExecSync), neither of which a client that sent -1 can have meant.
 */
export function timeoutSeconds(value: string, field: string): number {
  const n = Number(value === '' ? '0' : value);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new InvalidArgumentError(
      field,
      `must be a non-negative whole number of seconds, got ${shown(value, 24)}`,
    );
  }
  return n;
}
