/**
 * Builds the image engine from plain settings, for the daemon and for the offline
 * `crisp image import`. Knows the on-disk layout only through the paths it is given.
 */
import { stat } from 'node:fs/promises';
import type { Logger } from '../log/logger.js';
import type { StateStore } from '../store/state-store.js';
import { ContentStore } from './content-store.js';
import { LayerStore } from './layer-store.js';
import { loadRegistriesPolicy, type RegistriesPolicy } from './registries.js';
import { RegistryClient } from './registry-client.js';
import { ImageService, type PullObserver } from './service.js';

export interface ImageEngineSettings {
  blobsDir: string;
  layersDir: string;
  registriesConfig: string;
  authFile: string;
  pullTimeoutSeconds: number;
  userAgent: string;
}

/**
 * Loads registries.conf again only when the file changed (its mtime, size or inode), so lookups
 * on hot paths (ImageStatus) cost one stat instead of a read and a parse.
 */
export function cachedRegistriesPolicy(path: string): () => Promise<RegistriesPolicy> {
  let cached: { key: string; policy: RegistriesPolicy } | undefined;
  return async () => {
    let key: string;
    try {
      const st = await stat(path);
      key = `${st.ino}:${st.size}:${st.mtimeMs}`;
    } catch {
      key = 'absent';
    }
    if (cached?.key !== key) cached = { key, policy: await loadRegistriesPolicy(path) };
    return cached.policy;
  };
}

export function buildImageService(
  settings: ImageEngineSettings,
  store: StateStore,
  log: Logger,
  observer?: PullObserver,
): ImageService {
  const imageLog = log.child({ component: 'image' });
  return new ImageService(
    {
      store,
      content: new ContentStore(settings.blobsDir),
      layers: new LayerStore(settings.layersDir, { log: imageLog }),
      client: new RegistryClient({ log: imageLog, userAgent: settings.userAgent }),
      // Checked per use, so an edited registries.conf applies without a restart.
      registries: cachedRegistriesPolicy(settings.registriesConfig),
      log: imageLog,
      observer,
    },
    { authFile: settings.authFile, pullTimeoutMs: settings.pullTimeoutSeconds * 1000 },
  );
}
