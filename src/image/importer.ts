/**
 * Loading images without a registry, the way node images are preloaded: from an OCI image
 * layout directory, or from a tar archive holding an OCI layout or a `docker save` export.
 * Archives are unpacked (regular files only, names checked) into a scratch directory first.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { join, normalize, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { ContentStore } from './content-store.js';
import type { LayerSource } from './layer-cache.js';
import { imageManifest, storeLocalImage, type LocalLayer } from './local-image.js';
import { parseManifest, selectPlatform, type Descriptor } from './manifest.js';
import { DOCKER_LAYER } from './media-types.js';
import type { PulledImage } from './puller.js';
import { parseReference } from './reference.js';

export interface ImportedImage {
  pulled: PulledImage;
  /** Fully qualified tags found in the archive (or given by the caller). */
  tags: string[];
}

const digestPattern = /^(sha256|sha512):([0-9a-f]+)$/;

function blobPath(root: string, digest: string): string {
  const m = digestPattern.exec(digest);
  if (!m?.[1] || !m[2])
    throw new FailedPreconditionError(`invalid digest ${JSON.stringify(digest)} in the image layout`);
  return join(root, 'blobs', m[1], m[2]);
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new NotFoundError('file', path, { hint: `${what} is missing`, cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new FailedPreconditionError(`${path}: ${what} is not valid JSON`, { cause: err });
  }
}

function layerFromFile(path: string, digest: string, mediaType: string, size: number): LocalLayer {
  return { digest, mediaType, size, open: () => Promise.resolve(createReadStream(path)) };
}

/** A fully qualified tag from an annotation value, or undefined when it is only a bare tag. */
function tagFrom(value: string | undefined): string | undefined {
  if (!value || !value.includes('/')) return undefined;
  try {
    const ref = parseReference(value);
    return ref.tag === undefined ? undefined : ref.full;
  } catch {
    return undefined;
  }
}

async function importOciLayout(
  root: string,
  content: ContentStore,
  layers: LayerSource,
): Promise<ImportedImage[]> {
  const index = (await readJson(join(root, 'index.json'), 'the OCI layout index')) as {
    manifests?: Descriptor[];
  };
  const manifests = index.manifests ?? [];
  if (manifests.length === 0) throw new FailedPreconditionError(`${root}/index.json lists no images`);
  const out: ImportedImage[] = [];
  for (const top of manifests) {
    const annotations = top.annotations ?? {};
    const tag =
      tagFrom(annotations['io.containerd.image.name']) ??
      tagFrom(annotations['org.opencontainers.image.ref.name']);
    const topBytes = await readFile(blobPath(root, top.digest));
    let manifest = parseManifest(topBytes, top.mediaType);
    const extra: Buffer[] = [];
    let manifestBytes = topBytes;
    while (manifest.kind === 'index') {
      const chosen = selectPlatform(manifest);
      extra.push(manifestBytes);
      manifestBytes = await readFile(blobPath(root, chosen.digest));
      manifest = parseManifest(manifestBytes, chosen.mediaType);
    }
    const configBytes = await readFile(blobPath(root, manifest.config.digest));
    const pulled = await storeLocalImage(content, layers, {
      manifestBytes,
      configBytes,
      extraBlobs: extra,
      topDigest: top.digest,
      layers: manifest.layers.map((l) =>
        layerFromFile(blobPath(root, l.digest), l.digest, l.mediaType, l.size),
      ),
    });
    out.push({ pulled, tags: tag ? [tag] : [] });
  }
  return out;
}

interface DockerSaveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

async function importDockerSave(
  root: string,
  content: ContentStore,
  layers: LayerSource,
): Promise<ImportedImage[]> {
  const entries = (await readJson(
    join(root, 'manifest.json'),
    'the docker save manifest',
  )) as DockerSaveEntry[];
  const out: ImportedImage[] = [];
  for (const entry of entries) {
    const inside = (p: string): string => {
      const full = resolve(root, p);
      if (!full.startsWith(root + sep))
        throw new FailedPreconditionError(`archive path ${JSON.stringify(p)} escapes it`);
      return full;
    };
    const configBytes = await readFile(inside(entry.Config));
    const localLayers: LocalLayer[] = [];
    for (const layerPath of entry.Layers) {
      const full = inside(layerPath);
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(full)) hash.update(chunk as Buffer);
      const size = (await stat(full)).size;
      localLayers.push(layerFromFile(full, `sha256:${hash.digest('hex')}`, DOCKER_LAYER, size));
    }
    const manifestBytes = imageManifest(configBytes, localLayers);
    const pulled = await storeLocalImage(content, layers, {
      manifestBytes,
      configBytes,
      layers: localLayers,
    });
    const tags = (entry.RepoTags ?? []).map((t) => parseReference(t).full);
    out.push({ pulled, tags });
  }
  return out;
}

/** Unpacks the regular files of a (possibly gzipped) tar archive into `dest`. */
async function extractArchive(archive: string, dest: string): Promise<void> {
  const head = Buffer.alloc(2);
  const fh = await open(archive, 'r');
  try {
    await fh.read(head, 0, 2, 0);
  } finally {
    await fh.close();
  }
  const gz = head[0] === 0x1f && head[1] === 0x8b;
  const ex = extract();
  ex.on('entry', (header, stream, next) => {
    const name = normalize(header.name).replace(/^\.\/?/, '');
    const target = resolve(dest, name);
    const safe = target.startsWith(dest + sep) && !name.includes('\0');
    if (header.type !== 'file' || !safe) {
      stream.resume();
      stream.on('end', next);
      return;
    }
    void mkdir(resolve(target, '..'), { recursive: true })
      .then(() => pipeline(stream, createWriteStream(target)))
      .then(() => {
        next();
      }, next);
  });
  const source = createReadStream(archive);
  await (gz ? pipeline(source, createGunzip(), ex) : pipeline(source, ex));
}

/**
 * Imports every image in `path` (an OCI layout directory or an archive). `scratchDir` is where
 * archives are unpacked (under crisp's root, so no tmpfs fills up); it is removed afterwards.
 */
export async function importImages(
  path: string,
  scratchDir: string,
  content: ContentStore,
  layers: LayerSource,
): Promise<ImportedImage[]> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    throw new NotFoundError('file', path, {
      hint: 'give an OCI layout directory or an image archive',
      cause: err,
    });
  }
  if (info.isDirectory()) return importFrom(path, content, layers);
  await mkdir(scratchDir, { recursive: true });
  const work = await mkdtemp(join(scratchDir, 'import-'));
  try {
    await extractArchive(path, work);
    return await importFrom(work, content, layers);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function importFrom(
  root: string,
  content: ContentStore,
  layers: LayerSource,
): Promise<ImportedImage[]> {
  const has = (name: string): Promise<boolean> =>
    stat(join(root, name)).then(
      () => true,
      () => false,
    );
  if (await has('index.json')) return importOciLayout(root, content, layers);
  if (await has('manifest.json')) return importDockerSave(root, content, layers);
  throw new InvalidArgumentError(
    'path',
    `${root} is neither an OCI image layout (index.json) nor a docker save archive (manifest.json)`,
  );
}
