/**
 * Loads the effective configuration: built-in defaults < config file < environment < command-line flags.
 *
 * The file is validated on its own first (so a bad key in it is reported even when a flag happens to
 * override it), then the environment and flag overrides are applied and the result validated again.
 * Every failure is one ConfigError whose message starts with where the bad value came from.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { z } from 'zod';
import { ConfigError } from './errors.js';
import { configSchema, type CrispConfig } from './schema.js';

export const DEFAULT_CONFIG_FILE = '/etc/crisp/crisp.toml';
/** Names the config file when no --config flag is given. */
export const CONFIG_FILE_ENV = 'CRISP_CONFIG';

/** Environment variables that override a top-level key. Set (even to "") means applied. */
export const ENV_OVERRIDES = {
  CRISP_LISTEN: 'listen',
  CRISP_ROOT_DIR: 'root_dir',
  CRISP_RUN_DIR: 'run_dir',
  CRISP_LOG_LEVEL: 'log_level',
  CRISP_LOG_FORMAT: 'log_format',
  CRISP_METRICS_ADDRESS: 'metrics_address',
} as const satisfies Record<string, keyof CrispConfig>;

/** The config keys settable by a command-line flag, and the flag's name (for messages and help). */
export const FLAG_NAMES = {
  listen: '--listen',
  root_dir: '--root',
  run_dir: '--run-dir',
  log_level: '--log-level',
  metrics_address: '--metrics-address',
} as const satisfies Partial<Record<keyof CrispConfig, `--${string}`>>;

export type ConfigFlags = Partial<Record<keyof typeof FLAG_NAMES, string>>;

export interface LoadConfigOptions {
  /** The --config flag. A file named here (or by CRISP_CONFIG) must exist. */
  file?: string;
  /** Values of the command-line flags; undefined entries are ignored. */
  flags?: ConfigFlags;
  /** Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** The file read when none is named; may be absent. Defaults to DEFAULT_CONFIG_FILE (tests change it). */
  defaultFile?: string;
}

export interface LoadedConfig {
  config: CrispConfig;
  /** Absolute path of the config file that was looked for. */
  file: string;
  /** False when the default file does not exist and only defaults, environment and flags apply. */
  fileFound: boolean;
}

export async function loadConfig(opts: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const env = opts.env ?? process.env;
  const fromEnv = env[CONFIG_FILE_ENV];
  let origin: string | undefined; // who named the file, when someone did
  let named: string | undefined;
  if (opts.file !== undefined) {
    origin = 'flag --config';
    named = opts.file;
  } else if (fromEnv !== undefined && fromEnv !== '') {
    origin = `environment ${CONFIG_FILE_ENV}`;
    named = fromEnv;
  }
  const file = resolve(named ?? opts.defaultFile ?? DEFAULT_CONFIG_FILE);

  const text = await readConfigFile(file, origin);
  const raw = text === undefined ? {} : parseConfigText(text, file);

  const fromFile = configSchema.safeParse(raw, { reportInput: true });
  if (!fromFile.success) throw issuesToError(fromFile.error.issues, file, new Map());

  const sources = new Map<string, string>();
  const merged: Record<string, unknown> = { ...raw };
  for (const [name, key] of Object.entries(ENV_OVERRIDES)) {
    const value = env[name];
    if (value === undefined) continue;
    merged[key] = value;
    sources.set(key, `environment ${name}`);
  }
  for (const [key, flag] of Object.entries(FLAG_NAMES)) {
    const value = opts.flags?.[key as keyof ConfigFlags];
    if (value === undefined) continue;
    merged[key] = value;
    sources.set(key, `flag ${flag}`);
  }
  if (sources.size === 0) return { config: fromFile.data, file, fileFound: text !== undefined };

  const result = configSchema.safeParse(merged, { reportInput: true });
  if (!result.success) throw issuesToError(result.error.issues, file, sources);
  return { config: result.data, file, fileFound: text !== undefined };
}

/** The file's text, or undefined when the default file is simply absent. */
async function readConfigFile(file: string, origin: string | undefined): Promise<string | undefined> {
  try {
    const text = await readFile(file, 'utf8');
    return text.startsWith('\uFEFF') ? text.slice(1) : text;
  } catch (err: unknown) {
    const code = errnoCode(err);
    if ((code === 'ENOENT' || code === 'ENOTDIR') && origin === undefined) return undefined;
    const problem =
      code === 'ENOENT' || code === 'ENOTDIR'
        ? `config file not found (named by ${origin ?? 'default'})`
        : code === 'EISDIR'
          ? 'is a directory, not a config file'
          : `cannot read config file: ${err instanceof Error ? err.message : String(err)}`;
    throw new ConfigError(`${file}: ${problem}`, { file, cause: err });
  }
}

function errnoCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  return typeof err.code === 'string' ? err.code : undefined;
}

/** Parses TOML text; a syntax error becomes a ConfigError with line, column and the offending lines. */
export function parseConfigText(text: string, file: string): Record<string, unknown> {
  try {
    return parseToml(text);
  } catch (err: unknown) {
    if (!(err instanceof TomlError)) throw err;
    const reason = (err.message.split('\n')[0] ?? '').replace(/^Invalid TOML document: /, '');
    const where = `${file}:${err.line}:${err.column}`;
    const context = err.codeblock.trimEnd();
    const message = `${where}: TOML syntax error: ${reason}` + (context === '' ? '' : `\n${context}`);
    return throwConfigError(message, {
      file,
      cause: err,
      problems: [`${where}: TOML syntax error: ${reason}`],
    });
  }
}

function throwConfigError(message: string, options: ConstructorParameters<typeof ConfigError>[1]): never {
  throw new ConfigError(message, options);
}

// ---------------------------------------------------------------------------------------------------
// zod issues → one operator-readable ConfigError

type Issue = z.core.$ZodIssue;
type PathSegment = PropertyKey;

interface Problem {
  key: string | undefined;
  source: string;
  line: string;
}

function issuesToError(
  issues: readonly Issue[],
  file: string,
  sources: ReadonlyMap<string, string>,
): ConfigError {
  // A misspelt key is usually the root cause of the other complaints, so unknown keys come first.
  const ordered = [...issues].sort(
    (a, b) => Number(b.code === 'unrecognized_keys') - Number(a.code === 'unrecognized_keys'),
  );
  const problems = ordered.flatMap((issue) => describeIssue(issue, file, sources));
  const first = problems[0] ?? { key: undefined, source: file, line: `${file}: invalid configuration` };
  return new ConfigError(problems.map((p) => p.line).join('\n'), {
    file,
    key: first.key,
    source: first.source,
    problems: problems.map((p) => p.line),
  });
}

function describeIssue(issue: Issue, file: string, sources: ReadonlyMap<string, string>): Problem[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((name) => {
      const key = formatKey([...issue.path, name]);
      return { key, source: file, line: `${file}: unknown key ${quoteKey(key)}${suggest(issue.path, name)}` };
    });
  }
  const key = issue.path.length === 0 ? undefined : formatKey(issue.path);
  const source = sourceOf(issue, sources) ?? file;
  const text = problemText(issue);
  if (source !== file) return [{ key, source, line: `${source}: ${text}` }];
  return [
    { key, source, line: key === undefined ? `${file}: ${text}` : `${file}: key ${quoteKey(key)}: ${text}` },
  ];
}

/** The environment variable or flag that set the value at fault, if one did. */
function sourceOf(issue: Issue, sources: ReadonlyMap<string, string>): string | undefined {
  const keys: unknown[] = [issue.path[0]];
  const related: unknown = issue.code === 'custom' ? issue.params?.related : undefined;
  if (Array.isArray(related)) keys.push(...(related as unknown[]));
  // Flags beat environment variables, which beat the file: blame the strongest source involved.
  const labels = keys.flatMap((k) => {
    const label = typeof k === 'string' ? sources.get(k) : undefined;
    return label === undefined ? [] : [label];
  });
  return labels.find((l) => l.startsWith('flag ')) ?? labels[0];
}

function problemText(issue: Issue): string {
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return 'required key is missing';
      if (issue.expected === 'int' && typeof issue.input === 'number') {
        return `must be a whole number (got ${String(issue.input)})`;
      }
      return `expected ${tomlTypeName(issue.expected)}, got ${describeType(issue.input)}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map(String).join(', ')} (got ${describeValue(issue.input)})`;
    case 'too_big':
      return `must be at most ${String(issue.maximum)} (got ${describeValue(issue.input)})`;
    case 'too_small':
      return issue.origin === 'array' || issue.origin === 'string'
        ? issue.message
        : `must be at least ${String(issue.minimum)} (got ${describeValue(issue.input)})`;
    case 'invalid_key': {
      const inner = issue.issues[0]?.message ?? issue.message;
      return `invalid table name ${describeValue(issue.input)}: ${inner}`;
    }
    case 'invalid_format':
    case 'not_multiple_of':
    case 'unrecognized_keys':
    case 'invalid_union':
    case 'invalid_element':
    case 'custom':
      return issue.message;
  }
}

function tomlTypeName(expected: string): string {
  switch (expected) {
    case 'object':
    case 'record':
      return 'a table';
    case 'int':
      return 'integer';
    default:
      return expected;
  }
}

function describeType(value: unknown): string {
  if (Array.isArray(value)) return 'array';
  if (value instanceof Date) return 'date-time';
  if (value === null) return 'null';
  if (typeof value === 'object') return 'table';
  if (typeof value === 'bigint') return 'number';
  return typeof value;
}

function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return describeType(value);
}

/** `image.pause_image`, `runtimes."kata.v2".path`, `network.cni_bin_dirs[1]`. */
export function formatKey(path: readonly PathSegment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') {
      out += `[${segment}]`;
      continue;
    }
    const name = String(segment);
    const bare = /^[A-Za-z0-9_-]+$/.test(name) ? name : JSON.stringify(name);
    out += out === '' ? bare : `.${bare}`;
  }
  return out;
}

/** `"image.pause_image"`; a key that already has quoted parts is shown as is. */
function quoteKey(key: string): string {
  return key.includes('"') ? key : `"${key}"`;
}

// ---------------------------------------------------------------------------------------------------
// "did you mean" for unknown keys

function suggest(path: readonly PathSegment[], unknown: string): string {
  const known = knownKeysAt(path);
  if (known.length === 0) return '';
  const ranked = known
    .map((k) => ({ k, d: editDistance(k, unknown) }))
    .filter(
      ({ k, d }) => d <= Math.max(2, Math.floor(k.length / 3)) || k.includes(unknown) || unknown.includes(k),
    )
    .sort((a, b) => a.d - b.d);
  const best = ranked[0];
  if (best !== undefined) return `; did you mean ${quoteKey(formatKey([...path, best.k]))}?`;
  return `; valid keys ${path.length === 0 ? 'at the top level' : `in [${formatKey(path)}]`}: ${known.join(', ')}`;
}

/** The keys the schema accepts in the table at `path` (walking through defaults, pipes and records). */
function knownKeysAt(path: readonly PathSegment[]): string[] {
  let schema: z.core.$ZodType | undefined = configSchema;
  for (let i = 0; ; i++) {
    schema = unwrap(schema);
    const segment = path[i];
    if (segment === undefined) return schema instanceof z.ZodObject ? Object.keys(schema.shape) : [];
    if (schema instanceof z.ZodObject) {
      const shape: Record<string, z.core.$ZodType> = schema.shape;
      schema = typeof segment === 'string' ? shape[segment] : undefined;
    } else if (schema instanceof z.ZodRecord) {
      schema = schema.valueType;
    } else {
      return [];
    }
    if (schema === undefined) return [];
  }
}

function unwrap(schema: z.core.$ZodType): z.core.$ZodType {
  let current = schema;
  for (;;) {
    if (current instanceof z.ZodDefault || current instanceof z.ZodPrefault) current = current.unwrap();
    else if (current instanceof z.ZodPipe)
      current = current.out instanceof z.ZodTransform ? current.in : current.out;
    else return current;
  }
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      row.push(Math.min((previous[j] ?? 0) + 1, (row[j - 1] ?? 0) + 1, substitution));
    }
    previous = row;
  }
  return previous[b.length] ?? 0;
}
