/**
 * The built-in pause image, so pods start on a node that reaches no registry: one layer holding
 * the host's static catatonit (Debian's catatonit package) run in pause mode (`-P`: it sleeps
 * until signalled and reaps nothing else). Built at start-up, deterministically (fixed mtimes,
 * owners and modes), so the same catatonit always gives the same image id.
 */
import { readFile } from 'node:fs/promises';
import { pack } from 'tar-stream';
import { hostPlatform } from './manifest.js';
import { singleLayerImage, type LocalLayer } from './local-image.js';

/** The fixed local name of the built-in pause image. */
export const BUILTIN_PAUSE_IMAGE = 'localhost/crisp/pause:latest';
export const CATATONIT_PATH = '/usr/bin/catatonit';

async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export async function buildPauseImage(
  catatonitPath = CATATONIT_PATH,
): Promise<{ manifestBytes: Buffer; configBytes: Buffer; layer: LocalLayer }> {
  const binary = await readFile(catatonitPath);
  const tar = pack();
  const mtime = new Date(0);
  const done = collect(tar);
  tar.entry({ name: 'catatonit', mode: 0o755, uid: 0, gid: 0, mtime, type: 'file' }, binary);
  tar.finalize();
  const layerTar = await done;
  return singleLayerImage(
    layerTar,
    {
      Entrypoint: ['/catatonit', '-P'],
      User: '65535:65535',
      Labels: { 'io.crisp.image': 'pause', 'io.crisp.catatonit': catatonitPath },
    },
    hostPlatform().architecture,
  );
}
