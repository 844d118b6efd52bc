/** The configuration layer's public API. config/ imports nothing else from src/. */
export { ConfigError, type ConfigErrorOptions } from './errors.js';
export {
  CONFIG_FILE_ENV,
  DEFAULT_CONFIG_FILE,
  ENV_OVERRIDES,
  FLAG_NAMES,
  loadConfig,
  type ConfigFlags,
  type LoadConfigOptions,
  type LoadedConfig,
} from './load.js';
export { derivePaths, type CrispPaths } from './paths.js';
export {
  CGROUP_DRIVERS,
  DEFAULT_RUNTIMES,
  LOG_FORMATS,
  LOG_LEVELS,
  defaultConfig,
  parseHostPort,
  type CgroupDriver,
  type CrispConfig,
  type CrispConfigInput,
  type HostPort,
  type LogFormat,
  type LogLevel,
} from './schema.js';
export { configDigest, configToToml } from './toml.js';
