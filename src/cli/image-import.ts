/**
 * `crisp image import PATH [--name REF]`: loads an OCI layout directory or an image archive
 * into crisp's store. With the daemon running it asks the daemon (admin socket), so the
 * daemon's own store and index see the images at once; with no daemon it opens the store
 * itself, holding the same lock the daemon would.
 */
import { request } from 'node:http';
import { resolve } from 'node:path';
import { derivePaths, type CrispConfig } from '../config/index.js';
import { imageSettings } from '../daemon.js';
import { buildImageService } from '../image/build.js';
import type { Logger } from '../log/logger.js';
import { LevelStateStore } from '../store/state-store.js';
import { acquireInstanceLock } from '../util/instance-lock.js';

interface ImportedView {
  id: string;
  repoTags: string[];
}

class AdminUnreachable extends Error {}

function postImport(socketPath: string, body: { path: string; name?: string }): Promise<ImportedView[]> {
  return new Promise((resolvePromise, reject) => {
    const payload = JSON.stringify(body);
    const req = request(
      {
        socketPath,
        method: 'POST',
        path: '/v1/images/import',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        timeout: 60 * 60 * 1000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
              images?: ImportedView[];
              error?: string;
            };
            if (res.statusCode === 200 && parsed.images) resolvePromise(parsed.images);
            else reject(new Error(parsed.error ?? `the daemon answered HTTP ${res.statusCode ?? '?'}`));
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      },
    );
    req.on('error', (err: NodeJS.ErrnoException) => {
      reject(err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? new AdminUnreachable(err.message) : err);
    });
    req.on('timeout', () => req.destroy(new Error('the daemon did not answer within an hour')));
    req.end(payload);
  });
}

async function importOffline(config: CrispConfig, path: string, name: string | undefined, log: Logger) {
  const paths = derivePaths(config);
  const lock = await acquireInstanceLock(`root_dir ${config.root_dir}`, `root:${config.root_dir}`);
  const store = new LevelStateStore(paths.stateDb);
  try {
    await store.open();
    const images = buildImageService(imageSettings(config), store, log);
    await images.init();
    const records = await images.importImages(path, paths.tmpDir, name);
    return records.map((r) => ({ id: r.id, repoTags: [...r.repoTags] }));
  } finally {
    await store.close();
    await lock.release();
  }
}

/** Returns the lines to print. */
export async function imageImport(
  config: CrispConfig,
  pathArg: string,
  name: string | undefined,
  log: Logger,
): Promise<string[]> {
  const path = resolve(pathArg);
  let imported: ImportedView[];
  try {
    imported = await postImport(
      derivePaths(config).adminSocket,
      name === undefined ? { path } : { path, name },
    );
  } catch (err) {
    if (!(err instanceof AdminUnreachable)) throw err;
    imported = await importOffline(config, path, name, log);
  }
  return imported.map((i) => `imported ${i.id} ${i.repoTags.join(' ')}`.trimEnd());
}
