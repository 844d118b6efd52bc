/**
 * config/ is a bottom layer that imports nothing else from src/, so it has its own error class.
 * The CLI exits with status 2 when loading the configuration throws a ConfigError.
 */
export class ConfigError extends Error {
    code = 'INVALID_CONFIG';
    file;
    key;
    source;
    problems;
    constructor(message, options) {
        super(message, options.cause === undefined ? undefined : { cause: options.cause });
        this.name = 'ConfigError';
        this.file = options.file;
        this.key = options.key;
        this.source = options.source ?? options.file;
        this.problems = options.problems ?? [message];
    }
}
//# sourceMappingURL=errors.js.map