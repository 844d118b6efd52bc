/** The configuration layer's public API. config/ imports nothing else from src/. */
export { ConfigError } from './errors.js';
export { CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE, ENV_OVERRIDES, FLAG_NAMES, loadConfig, } from './load.js';
export { derivePaths } from './paths.js';
export { CGROUP_DRIVERS, DEFAULT_RUNTIMES, LOG_FORMATS, LOG_LEVELS, defaultConfig, parseHostPort, } from './schema.js';
export { configDigest, configToToml } from './toml.js';
//# sourceMappingURL=index.js.map