/**
 * config/ is a bottom layer that imports nothing else from src/, so it has its own error class.
 * The CLI exits with status 2 when loading the configuration throws a ConfigError.
 */

export interface ConfigErrorOptions {
  /** The config file being loaded (also set when the bad value came from the environment or a flag). */
  file: string;
  /** The dotted key at fault (`image.pause_image`), when the problem is about one key. */
  key?: string;
  /** Where the bad value came from: the file path, `environment CRISP_X` or `flag --x`. */
  source?: string;
  /** Every problem found, one operator-readable line each; the message starts with the first. */
  problems?: readonly string[];
  cause?: unknown;
}

export class ConfigError extends Error {
  readonly code = 'INVALID_CONFIG';
  readonly file: string;
  readonly key: string | undefined;
  readonly source: string;
  readonly problems: readonly string[];

  constructor(message: string, options: ConfigErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ConfigError';
    this.file = options.file;
    this.key = options.key;
    this.source = options.source ?? options.file;
    this.problems = options.problems ?? [message];
  }
}
