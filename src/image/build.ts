/**
 * Builds the image engine from plain settings, for the daemon and for the offline
 * `crisp image import`. Knows the on-disk layout only through the paths it is given.
 */
import type { Logger } from '../log/logger.js';
import type { StateStore } from '../store/state-store.js';
import { ContentStore } from './content-store.js';
import { LayerStore } from './layer-store.js';
import { loadRegistriesPolicy } from './registries.js';
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
      // Read per pull, so an edited registries.conf applies without a restart.
      registries: () => loadRegistriesPolicy(settings.registriesConfig),
      log: imageLog,
      observer,
    },
    { authFile: settings.authFile, pullTimeoutMs: settings.pullTimeoutSeconds * 1000 },
  );
}
