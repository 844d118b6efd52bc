/**
 * Builds OCI images for the e2e tests, byte by byte, without docker or buildah: layer tars
 * (files, dirs, symlinks, hard links, whiteouts, opaque markers), compressed with gzip, zstd (the
 * zstd binary) or not at all; image configs; OCI and Docker schema2 manifests; indexes. The result
 * is an `OciLayout`: the top manifest or index bytes plus every blob it reaches, by digest, kept
 * in memory or (for big layers) in files under a temp dir. A layout can be pushed to the test
 * registry (registry.ts), written as an OCI image layout directory, or written as a `docker save`
 * archive for `crisp image import`.
 *
 * Everything is deterministic: fixed mtimes, fixed `created` dates, sorted-by-construction JSON,
 * so building an image twice gives the same digests (the busybox layer depends on the host's
 * /bin/busybox, nothing else). JSON documents are written with 3-space indentation and a final
 * newline, as docker does, so a client that re-serialises a manifest gets a different digest.
 */
import { spawn } from 'node:child_process';
import { createCipheriv, createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { arch, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough, Readable, Transform, Writable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import { extract as tarExtract, pack as tarPack, type Header, type Pack } from 'tar-stream';

type Headers = Partial<Header> & { name: string };

export const MediaType = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  inToto: 'application/vnd.in-toto+json',
} as const;

/** The Accept header a pulling client sends (containers/image's list, schema1 left out). */
export const MANIFEST_ACCEPT = [
  MediaType.ociManifest,
  MediaType.dockerManifest,
  MediaType.dockerManifestList,
  MediaType.ociIndex,
].join(', ');

/** mtime of every tar entry unless an entry says otherwise. */
export const FIXED_MTIME = new Date('2024-01-01T00:00:00Z');
/** `created` of every config and history entry unless the options say otherwise. */
export const FIXED_CREATED = '2024-01-01T00:00:00Z';

export type ManifestFormat = 'oci' | 'docker';
export type Compression = 'gzip' | 'zstd' | 'none';

/** The Go name of the host architecture (what an image config and a platform say). */
export const hostArch: string =
  (
    {
      x64: 'amd64',
      arm64: 'arm64',
      arm: 'arm',
      ia32: '386',
      ppc64: 'ppc64le',
      s390x: 's390x',
      riscv64: 'riscv64',
    } as Record<string, string>
  )[arch()] ?? arch();

// ---------------------------------------------------------------------------------------------
// Document shapes

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
  urls?: string[];
  artifactType?: string;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageConfig {
  created?: string;
  architecture: string;
  os: string;
  variant?: string;
  config?: {
    User?: string;
    Env?: string[];
    Entrypoint?: string[];
    Cmd?: string[];
    WorkingDir?: string;
    StopSignal?: string;
    Labels?: Record<string, string>;
    ExposedPorts?: Record<string, Record<string, never>>;
    Volumes?: Record<string, Record<string, never>>;
  };
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: { created?: string; created_by?: string; comment?: string; empty_layer?: boolean }[];
}

export function isIndexMediaType(mediaType: string): boolean {
  return mediaType === MediaType.ociIndex || mediaType === MediaType.dockerManifestList;
}

// ---------------------------------------------------------------------------------------------
// Blobs and layouts

/** Where a blob's bytes are: in memory or in a file. */
export type BlobData = { readonly bytes: Buffer } | { readonly path: string };

export interface Blob {
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
  readonly data: BlobData;
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function digestHex(digest: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(digest);
  if (!m?.[1]) throw new Error(`not a sha256 digest: ${digest}`);
  return m[1];
}

/** A JSON document as stored: 3-space indentation and a final newline (like docker's output). */
export function jsonBytes(doc: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(doc, null, 3)}\n`);
}

function memoryBlob(bytes: Buffer, mediaType: string): Blob {
  return { digest: sha256(bytes), size: bytes.length, mediaType, data: { bytes } };
}

export function openBlobData(data: BlobData): Readable {
  return 'bytes' in data ? Readable.from([data.bytes]) : createReadStream(data.path);
}

export async function readBlobData(data: BlobData): Promise<Buffer> {
  return 'bytes' in data ? data.bytes : readFile(data.path);
}

/**
 * An image or index and everything it refers to. `bytes` is the top document; `blobs` holds
 * every other blob it reaches by digest (configs, layers and, for an index, the child
 * manifests and their blobs), but not the top document itself.
 */
export class OciLayout {
  readonly digest: string;
  readonly size: number;

  constructor(
    readonly mediaType: string,
    readonly bytes: Buffer,
    readonly blobs: ReadonlyMap<string, Blob>,
    /** Temp dirs holding file-backed blobs; `dispose()` removes them. */
    readonly tempDirs: readonly string[] = [],
  ) {
    this.digest = sha256(bytes);
    this.size = bytes.length;
  }

  get isIndex(): boolean {
    return isIndexMediaType(this.mediaType);
  }

  /** The top document's descriptor (as an index or index.json lists it). */
  descriptor(extra: { platform?: Platform; annotations?: Record<string, string> } = {}): Descriptor {
    return { mediaType: this.mediaType, digest: this.digest, size: this.size, ...extra };
  }

  /** The top document parsed; throws if it is an index. */
  manifest(): ImageManifest {
    if (this.isIndex) throw new Error('the layout holds an index, not an image manifest');
    return JSON.parse(this.bytes.toString()) as ImageManifest;
  }

  /** The top document parsed; throws if it is an image manifest. */
  index(): ImageIndex {
    if (!this.isIndex) throw new Error('the layout holds an image manifest, not an index');
    return JSON.parse(this.bytes.toString()) as ImageIndex;
  }

  blob(digest: string): Blob {
    const b = this.blobs.get(digest);
    if (!b) throw new Error(`blob ${digest} is not in the layout`);
    return b;
  }

  readBlob(digest: string): Promise<Buffer> {
    return readBlobData(this.blob(digest).data);
  }

  openBlob(digest: string): Readable {
    return openBlobData(this.blob(digest).data);
  }

  /**
   * The runnable image this layout names: itself, or the index entry for `platform` (default
   * linux/host arch; nested indexes are followed).
   */
  async image(platform: Platform = { os: 'linux', architecture: hostArch }): Promise<ImageSummary> {
    let mediaType = this.mediaType;
    let bytes = this.bytes;
    while (isIndexMediaType(mediaType)) {
      const idx = JSON.parse(bytes.toString()) as ImageIndex;
      const entry = idx.manifests.find(
        (m) =>
          m.platform?.os === platform.os &&
          m.platform.architecture === platform.architecture &&
          (platform.variant === undefined || m.platform.variant === platform.variant),
      );
      if (!entry) throw new Error(`no ${platform.os}/${platform.architecture} entry in the index`);
      mediaType = entry.mediaType;
      bytes = await this.readBlob(entry.digest);
    }
    const manifest = JSON.parse(bytes.toString()) as ImageManifest;
    const config = JSON.parse((await this.readBlob(manifest.config.digest)).toString()) as ImageConfig;
    return {
      manifestDigest: sha256(bytes),
      manifestMediaType: mediaType,
      manifestBytes: bytes,
      manifest,
      id: manifest.config.digest,
      config,
      layers: manifest.layers,
      diffIds: config.rootfs.diff_ids,
      chainIds: chainIds(config.rootfs.diff_ids),
    };
  }

  /** Removes the temp dirs of file-backed blobs (no-op for in-memory layouts). */
  async dispose(): Promise<void> {
    await Promise.all(this.tempDirs.map((d) => rm(d, { recursive: true, force: true })));
  }
}

export interface ImageSummary {
  manifestDigest: string;
  manifestMediaType: string;
  manifestBytes: Buffer;
  manifest: ImageManifest;
  /** The image id: the config digest. */
  id: string;
  config: ImageConfig;
  layers: Descriptor[];
  diffIds: string[];
  chainIds: string[];
}

/** ChainID(L0) = DiffID(L0); ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(n)). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out.at(-1);
    out.push(prev === undefined ? d : sha256(`${prev} ${d}`));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Streams

/** Passes bytes through, counting them and hashing them with sha256. */
class Digester extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private result: string | undefined;
  size = 0;

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    cb(null, chunk);
  }

  get digest(): string {
    this.result ??= `sha256:${this.hash.digest('hex')}`;
    return this.result;
  }
}

class MemorySink extends Writable {
  private readonly chunks: Buffer[] = [];

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    cb();
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** Pipes `input` through an external filter (zstd) into `output`; rejects on a non-zero exit. */
async function filterThrough(
  argv: [string, ...string[]],
  input: Readable,
  output: Writable[],
): Promise<void> {
  const [cmd, ...args] = argv;
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${argv.join(' ')} failed (${signal ?? String(code)}): ${stderr.trim()}`));
    });
  });
  try {
    await Promise.all([
      pipeline(input, child.stdin),
      pipeline(child.stdout, ...(output as [Writable, ...Writable[]])),
      exited,
    ]);
  } catch (err) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    throw err;
  }
}

function zstdCompress(input: Readable, output: Writable[]): Promise<void> {
  return filterThrough(['zstd', '-q', '-c', '-3', '-T1', '--no-progress'], input, output);
}

function zstdDecompress(input: Readable, output: Writable[]): Promise<void> {
  return filterThrough(['zstd', '-q', '-d', '-c', '--no-progress'], input, output);
}

/** Uncompresses `input` (per `compression`) into `output`. */
export async function decompress(
  compression: Compression,
  input: Readable,
  output: Writable[],
): Promise<void> {
  const [first, ...rest] = output;
  if (!first) throw new Error('no output');
  switch (compression) {
    case 'none':
      await pipeline(input, first, ...rest);
      return;
    case 'gzip':
      await pipeline(input, createGunzip(), first, ...rest);
      return;
    case 'zstd':
      await zstdDecompress(input, output);
      return;
  }
}

/** Deterministic incompressible bytes: the AES-256-CTR keystream keyed by sha256(seed). */
export function pseudoRandomStream(seed: string, size: number): Readable {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  const CHUNK = 1 << 20;
  const zeros = Buffer.alloc(CHUNK);
  let left = size;
  return new Readable({
    read() {
      if (left <= 0) {
        this.push(null);
        return;
      }
      const n = Math.min(CHUNK, left);
      left -= n;
      this.push(cipher.update(n === CHUNK ? zeros : zeros.subarray(0, n)));
    },
  });
}

// ---------------------------------------------------------------------------------------------
// Layers

interface EntryMeta {
  /** Path in the image, with or without a leading "/". */
  path: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
}

/** File content too big to hold: its size and a way to stream it. */
export interface StreamedContent {
  size: number;
  open(): Readable;
}

export type LayerEntry =
  | (EntryMeta & { type: 'file'; content?: string | Buffer | StreamedContent })
  | (EntryMeta & { type: 'dir' })
  | (EntryMeta & { type: 'symlink'; target: string })
  /** A hard link to `target` (an image path), which must come earlier in the same layer. */
  | (EntryMeta & { type: 'hardlink'; target: string })
  /** Deletes `path` from the layers below: written as `<dir>/.wh.<name>`. */
  | { type: 'whiteout'; path: string; mtime?: Date }
  /** Hides the lower layers' content of the directory `path`: written as `<path>/.wh..wh..opq`. */
  | { type: 'opaque'; path: string; mtime?: Date };

export interface Layer {
  compression: Compression;
  /** Digest and size of the blob (the compressed tar). */
  digest: string;
  size: number;
  /** sha256 of the uncompressed tar, as the config's rootfs.diff_ids lists it. */
  diffId: string;
  uncompressedSize: number;
  data: BlobData;
  /** Overrides the layer media type the manifest would otherwise derive (e.g. in-toto). */
  mediaType?: string;
  annotations?: Record<string, string>;
}

export interface BuildLayerOptions {
  compression?: Compression;
  /** Write the blob to a file in this dir (streamed) instead of keeping it in memory. */
  dir?: string;
  /** Add a dir entry (0755, root) for each missing parent before an entry; default true. */
  addParents?: boolean;
  /** gzip level; default 6. */
  gzipLevel?: number;
}

function relPath(p: string): string {
  const r = p.replace(/^\/+/, '').replace(/\/+$/, '');
  if (r === '' || r.split('/').some((c) => c === '..' || c === '.' || c === ''))
    throw new Error(`bad layer path: ${JSON.stringify(p)}`);
  return r;
}

function parentsOf(p: string): string[] {
  const parts = p.split('/');
  const out: string[] = [];
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join('/'));
  return out;
}

function splitPath(p: string): { dir: string; base: string } {
  const i = p.lastIndexOf('/');
  return i < 0 ? { dir: '', base: p } : { dir: p.slice(0, i + 1), base: p.slice(i + 1) };
}

async function addEntry(pack: Pack, header: Headers, content?: Buffer | StreamedContent): Promise<void> {
  if (content === undefined || Buffer.isBuffer(content)) {
    await new Promise<void>((resolve, reject) => {
      const cb = (err?: Error | null): void => {
        if (err) reject(err);
        else resolve();
      };
      if (content === undefined) pack.entry(header, cb);
      else pack.entry(header, content, cb);
    });
    return;
  }
  const done = new Promise<void>((resolve, reject) => {
    const sink = pack.entry({ ...header, size: content.size }, (err) => {
      if (err) reject(err);
      else resolve();
    });
    void (async () => {
      try {
        for await (const chunk of content.open()) {
          if (!sink.write(chunk as Buffer))
            await new Promise<void>((resolve) => {
              sink.once('drain', () => {
                resolve();
              });
            });
        }
        sink.end(undefined);
      } catch (err) {
        sink.destroy(err instanceof Error ? err : new Error(String(err)));
      }
    })();
  });
  await done;
}

/** Writes `entries` into a tar pack, then finalizes it. */
async function writeEntries(pack: Pack, entries: readonly LayerEntry[], addParents: boolean): Promise<void> {
  const explicitDirs = new Set(entries.filter((e) => e.type === 'dir').map((e) => relPath(e.path)));
  const emitted = new Set<string>();
  const dirHeader = (name: string): Headers => ({
    name: `${name}/`,
    type: 'directory',
    mode: 0o755,
    uid: 0,
    gid: 0,
    mtime: FIXED_MTIME,
  });
  for (const e of entries) {
    const path = relPath(e.path);
    if (addParents) {
      for (const parent of parentsOf(path)) {
        if (emitted.has(parent) || explicitDirs.has(parent)) continue;
        emitted.add(parent);
        await addEntry(pack, dirHeader(parent));
      }
    }
    const mtime = e.mtime ?? FIXED_MTIME;
    switch (e.type) {
      case 'dir':
        emitted.add(path);
        await addEntry(pack, {
          ...dirHeader(path),
          mode: e.mode ?? 0o755,
          uid: e.uid ?? 0,
          gid: e.gid ?? 0,
          mtime,
        });
        break;
      case 'file': {
        const c = e.content ?? Buffer.alloc(0);
        await addEntry(
          pack,
          { name: path, type: 'file', mode: e.mode ?? 0o644, uid: e.uid ?? 0, gid: e.gid ?? 0, mtime },
          typeof c === 'string' ? Buffer.from(c) : c,
        );
        break;
      }
      case 'symlink':
        await addEntry(pack, {
          name: path,
          type: 'symlink',
          linkname: e.target,
          mode: e.mode ?? 0o777,
          uid: e.uid ?? 0,
          gid: e.gid ?? 0,
          mtime,
        });
        break;
      case 'hardlink':
        await addEntry(pack, {
          name: path,
          type: 'link',
          linkname: relPath(e.target),
          mode: e.mode ?? 0o644,
          uid: e.uid ?? 0,
          gid: e.gid ?? 0,
          mtime,
        });
        break;
      case 'whiteout': {
        const { dir, base } = splitPath(path);
        await addEntry(
          pack,
          { name: `${dir}.wh.${base}`, type: 'file', mode: 0o644, mtime },
          Buffer.alloc(0),
        );
        break;
      }
      case 'opaque':
        await addEntry(
          pack,
          { name: `${path}/.wh..wh..opq`, type: 'file', mode: 0o644, mtime },
          Buffer.alloc(0),
        );
        break;
    }
  }
  pack.finalize();
}

/** Streams a tar of `entries` into `outputs` (plain); resolves with its digest and size. */
export async function writeTar(
  entries: readonly LayerEntry[],
  outputs: Writable[],
  addParents = true,
): Promise<{ digest: string; size: number }> {
  const pack = tarPack();
  const hasher = new Digester();
  const writing = writeEntries(pack, entries, addParents).catch((err: unknown) => {
    pack.destroy(err instanceof Error ? err : new Error(String(err)));
    throw err;
  });
  await Promise.all([writing, pipeline(Readable.from(pack), hasher, ...outputs)]);
  return { digest: hasher.digest, size: hasher.size };
}

let blobFileCounter = 0;

/** Builds a layer blob from `entries`: tar, compress, hash (diffId of the tar, digest of the blob). */
export async function buildLayer(
  entries: readonly LayerEntry[],
  opts: BuildLayerOptions = {},
): Promise<Layer> {
  const compression = opts.compression ?? 'gzip';
  const blobHasher = new Digester();
  const filePath =
    opts.dir === undefined ? undefined : join(opts.dir, `layer-${process.pid}-${++blobFileCounter}.tmp`);
  const sink = filePath === undefined ? new MemorySink() : createWriteStream(filePath);
  const plain = new PassThrough();
  let tar: { digest: string; size: number };
  switch (compression) {
    case 'none':
      [tar] = await Promise.all([
        writeTar(entries, [plain], opts.addParents),
        pipeline(plain, blobHasher, sink),
      ]);
      break;
    case 'gzip':
      [tar] = await Promise.all([
        writeTar(entries, [plain], opts.addParents),
        pipeline(plain, createGzip({ level: opts.gzipLevel ?? 6 }), blobHasher, sink),
      ]);
      break;
    case 'zstd':
      [tar] = await Promise.all([
        writeTar(entries, [plain], opts.addParents),
        zstdCompress(plain, [blobHasher, sink]),
      ]);
      break;
  }
  let data: BlobData;
  if (filePath === undefined) {
    data = { bytes: (sink as MemorySink).bytes() };
  } else {
    const final = join(dirname(filePath), digestHex(blobHasher.digest));
    await rm(final, { force: true });
    await rename(filePath, final);
    data = { path: final };
  }
  return {
    compression,
    digest: blobHasher.digest,
    size: blobHasher.size,
    diffId: tar.digest,
    uncompressedSize: tar.size,
    data,
  };
}

/** A layer made of raw bytes under a custom media type (an attestation, an artifact). */
export function rawLayer(bytes: Buffer, mediaType: string, annotations?: Record<string, string>): Layer {
  const digest = sha256(bytes);
  return {
    compression: 'none',
    digest,
    size: bytes.length,
    diffId: digest,
    uncompressedSize: bytes.length,
    data: { bytes },
    mediaType,
    ...(annotations ? { annotations } : {}),
  };
}

export function layerMediaType(layer: Layer, format: ManifestFormat): string {
  if (layer.mediaType !== undefined) return layer.mediaType;
  if (format === 'oci') {
    switch (layer.compression) {
      case 'none':
        return MediaType.ociLayer;
      case 'gzip':
        return MediaType.ociLayerGzip;
      case 'zstd':
        return MediaType.ociLayerZstd;
    }
  }
  switch (layer.compression) {
    case 'none':
      return MediaType.dockerLayer;
    case 'gzip':
      return MediaType.dockerLayerGzip;
    case 'zstd':
      throw new Error('a Docker schema2 manifest has no zstd layer type; use an OCI manifest');
  }
}

// ---------------------------------------------------------------------------------------------
// Configs, manifests, indexes

export interface ImageConfigOptions {
  architecture?: string;
  os?: string;
  variant?: string;
  created?: string;
  env?: string[];
  entrypoint?: string[];
  cmd?: string[];
  workingDir?: string;
  user?: string;
  stopSignal?: string;
  labels?: Record<string, string>;
  /** e.g. ["80/tcp"] */
  exposedPorts?: string[];
  /** e.g. ["/data"] */
  volumes?: string[];
  /** One `created_by` per layer (default "crisp test layer <n>"). */
  history?: string[];
}

function toSet(list: string[] | undefined): Record<string, Record<string, never>> | undefined {
  return list === undefined ? undefined : Object.fromEntries(list.map((k) => [k, {}]));
}

export function makeConfig(diffIds: readonly string[], opts: ImageConfigOptions = {}): ImageConfig {
  const created = opts.created ?? FIXED_CREATED;
  return {
    created,
    architecture: opts.architecture ?? hostArch,
    os: opts.os ?? 'linux',
    ...(opts.variant !== undefined ? { variant: opts.variant } : {}),
    config: {
      User: opts.user,
      Env: opts.env,
      Entrypoint: opts.entrypoint,
      Cmd: opts.cmd,
      WorkingDir: opts.workingDir,
      StopSignal: opts.stopSignal,
      Labels: opts.labels,
      ExposedPorts: toSet(opts.exposedPorts),
      Volumes: toSet(opts.volumes),
    },
    rootfs: { type: 'layers', diff_ids: [...diffIds] },
    history: diffIds.map((_, i) => ({ created, created_by: opts.history?.[i] ?? `crisp test layer ${i}` })),
  };
}

export interface BuildImageOptions {
  format?: ManifestFormat;
  config?: ImageConfigOptions;
  /** A ready config document instead of one made from `config` (e.g. an attestation's). */
  rawConfig?: { bytes: Buffer; mediaType?: string };
  annotations?: Record<string, string>;
  artifactType?: string;
  tempDirs?: readonly string[];
}

/** An image manifest (OCI by default) over `layers`, base layer first, with its config. */
export function buildImage(layers: readonly Layer[], opts: BuildImageOptions = {}): OciLayout {
  const format = opts.format ?? 'oci';
  const configBlob = opts.rawConfig
    ? memoryBlob(
        opts.rawConfig.bytes,
        opts.rawConfig.mediaType ?? (format === 'oci' ? MediaType.ociConfig : MediaType.dockerConfig),
      )
    : memoryBlob(
        jsonBytes(
          makeConfig(
            layers.map((l) => l.diffId),
            opts.config,
          ),
        ),
        format === 'oci' ? MediaType.ociConfig : MediaType.dockerConfig,
      );
  const layerDescs: Descriptor[] = layers.map((l) => ({
    mediaType: layerMediaType(l, format),
    digest: l.digest,
    size: l.size,
    ...(l.annotations ? { annotations: l.annotations } : {}),
  }));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: format === 'oci' ? MediaType.ociManifest : MediaType.dockerManifest,
    ...(opts.artifactType !== undefined ? { artifactType: opts.artifactType } : {}),
    config: { mediaType: configBlob.mediaType, digest: configBlob.digest, size: configBlob.size },
    layers: layerDescs,
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  const blobs = new Map<string, Blob>([[configBlob.digest, configBlob]]);
  layers.forEach((l, i) => {
    const desc = layerDescs[i];
    if (desc)
      blobs.set(l.digest, { digest: l.digest, size: l.size, mediaType: desc.mediaType, data: l.data });
  });
  return new OciLayout(
    manifest.mediaType ?? MediaType.ociManifest,
    jsonBytes(manifest),
    blobs,
    opts.tempDirs,
  );
}

export interface IndexEntry {
  image: OciLayout;
  /** Default: read from the image's config (architecture, os, variant). */
  platform?: Platform;
  annotations?: Record<string, string>;
}

/** An OCI index (or Docker manifest list) over `entries`, in order. */
export async function buildIndex(
  entries: readonly IndexEntry[],
  opts: { format?: ManifestFormat; annotations?: Record<string, string> } = {},
): Promise<OciLayout> {
  const format = opts.format ?? 'oci';
  const blobs = new Map<string, Blob>();
  const tempDirs: string[] = [];
  const manifests: Descriptor[] = [];
  for (const e of entries) {
    let platform = e.platform;
    if (!platform && !e.image.isIndex) {
      const cfg = JSON.parse(
        (await e.image.readBlob(e.image.manifest().config.digest)).toString(),
      ) as ImageConfig;
      platform = {
        architecture: cfg.architecture,
        os: cfg.os,
        ...(cfg.variant !== undefined ? { variant: cfg.variant } : {}),
      };
    }
    manifests.push(
      e.image.descriptor({
        ...(platform ? { platform } : {}),
        ...(e.annotations ? { annotations: e.annotations } : {}),
      }),
    );
    for (const [d, b] of e.image.blobs) blobs.set(d, b);
    blobs.set(e.image.digest, memoryBlob(e.image.bytes, e.image.mediaType));
    tempDirs.push(...e.image.tempDirs);
  }
  const mediaType = format === 'oci' ? MediaType.ociIndex : MediaType.dockerManifestList;
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType,
    manifests,
    ...(opts.annotations ? { annotations: opts.annotations } : {}),
  };
  return new OciLayout(mediaType, jsonBytes(index), blobs, [...new Set(tempDirs)]);
}

// ---------------------------------------------------------------------------------------------
// On-disk forms: OCI image layout directory, docker save archive

/**
 * Writes an OCI image layout directory: `oci-layout`, `index.json` (one entry for the top
 * document, annotated with `refName` / `imageName` when given) and `blobs/sha256/<hex>`.
 */
export async function writeOciLayout(
  layout: OciLayout,
  dir: string,
  opts: { refName?: string; imageName?: string } = {},
): Promise<void> {
  const blobDir = join(dir, 'blobs', 'sha256');
  await mkdir(blobDir, { recursive: true });
  await writeFile(join(dir, 'oci-layout'), jsonBytes({ imageLayoutVersion: '1.0.0' }));
  const annotations: Record<string, string> = {};
  if (opts.imageName !== undefined) annotations['io.containerd.image.name'] = opts.imageName;
  if (opts.refName !== undefined) annotations['org.opencontainers.image.ref.name'] = opts.refName;
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaType.ociIndex,
    manifests: [layout.descriptor(Object.keys(annotations).length > 0 ? { annotations } : {})],
  };
  await writeFile(join(dir, 'index.json'), jsonBytes(index));
  await writeFile(join(blobDir, digestHex(layout.digest)), layout.bytes);
  for (const b of layout.blobs.values()) {
    const to = join(blobDir, digestHex(b.digest));
    if ('bytes' in b.data) await writeFile(to, b.data.bytes);
    else await copyFile(b.data.path, to);
  }
}

export interface DockerArchiveOptions {
  /** e.g. ["docker.io/library/busybox:latest"] or ["busybox:latest"]. */
  repoTags: string[];
  /**
   * "oci" (default): what `docker save` writes since Docker 25 — an OCI image layout with
   * uncompressed layers plus manifest.json and repositories. "legacy": the older form
   * (`<config hex>.json`, `<layer id>/layer.tar|json|VERSION`, manifest.json, repositories).
   */
  format?: 'oci' | 'legacy';
  /** Which image of an index to save; default linux/host arch. */
  platform?: Platform;
}

export interface DockerArchiveResult {
  /** The image id (config digest): the same as the source layout's. */
  id: string;
  /** Digest of the OCI manifest inside an "oci" archive (its layers are uncompressed). */
  manifestDigest: string | undefined;
}

function splitRepoTag(repoTag: string): { repo: string; tag: string } {
  const slash = repoTag.lastIndexOf('/');
  const colon = repoTag.lastIndexOf(':');
  if (colon <= slash) return { repo: repoTag, tag: 'latest' };
  return { repo: repoTag.slice(0, colon), tag: repoTag.slice(colon + 1) };
}

/**
 * Writes a `docker save` style tar to `file`. Layers go in uncompressed, as docker writes
 * them; the config is copied unchanged, so the image id is the source layout's.
 */
export async function writeDockerArchive(
  layout: OciLayout,
  file: string,
  opts: DockerArchiveOptions,
): Promise<DockerArchiveResult> {
  const format = opts.format ?? 'oci';
  const img = await layout.image(opts.platform);
  const work = await mkdtemp(join(tmpdir(), 'crisp-docker-archive-'));
  try {
    // Uncompress every layer into a file; check its diffId against the config.
    const tars: { path: string; size: number; diffId: string }[] = [];
    for (const [i, desc] of img.layers.entries()) {
      const compression = compressionOf(desc.mediaType);
      const path = join(work, `layer-${i}.tar`);
      const hasher = new Digester();
      await decompress(compression, layout.openBlob(desc.digest), [hasher, createWriteStream(path)]);
      if (hasher.digest !== img.diffIds[i])
        throw new Error(`layer ${desc.digest}: diffId ${hasher.digest} != config ${img.diffIds[i] ?? '?'}`);
      tars.push({ path, size: hasher.size, diffId: hasher.digest });
    }
    const configBytes = await layout.readBlob(img.id);
    const pack = tarPack();
    const out = pipeline(Readable.from(pack), createWriteStream(file));
    const writing = (async () => {
      const put = (name: string, content?: Buffer | StreamedContent): Promise<void> =>
        addEntry(
          pack,
          content === undefined
            ? { name, type: 'directory', mode: 0o755, mtime: FIXED_MTIME }
            : { name, type: 'file', mode: 0o644, mtime: FIXED_MTIME },
          content,
        );
      const fileContent = (t: { path: string; size: number }): StreamedContent => ({
        size: t.size,
        open: () => createReadStream(t.path),
      });
      const repositories: Record<string, Record<string, string>> = {};
      let manifestDigest: string | undefined;
      if (format === 'oci') {
        const manifest: ImageManifest = {
          schemaVersion: 2,
          mediaType: MediaType.ociManifest,
          config: { mediaType: MediaType.ociConfig, digest: img.id, size: configBytes.length },
          layers: tars.map((t) => ({ mediaType: MediaType.ociLayer, digest: t.diffId, size: t.size })),
        };
        const manifestBytes = jsonBytes(manifest);
        manifestDigest = sha256(manifestBytes);
        await put('blobs/');
        await put('blobs/sha256/');
        const written = new Set<string>();
        for (const t of tars) {
          if (written.has(t.diffId)) continue;
          written.add(t.diffId);
          await put(`blobs/sha256/${digestHex(t.diffId)}`, fileContent(t));
        }
        await put(`blobs/sha256/${digestHex(img.id)}`, configBytes);
        await put(`blobs/sha256/${digestHex(manifestDigest)}`, manifestBytes);
        const index: ImageIndex = {
          schemaVersion: 2,
          mediaType: MediaType.ociIndex,
          manifests: opts.repoTags.map((rt) => ({
            mediaType: MediaType.ociManifest,
            digest: manifestDigest ?? '',
            size: manifestBytes.length,
            annotations: {
              'io.containerd.image.name': rt,
              'org.opencontainers.image.ref.name': splitRepoTag(rt).tag,
            },
          })),
        };
        await put('index.json', jsonBytes(index));
        await put(
          'manifest.json',
          jsonBytes([
            {
              Config: `blobs/sha256/${digestHex(img.id)}`,
              RepoTags: opts.repoTags,
              Layers: tars.map((t) => `blobs/sha256/${digestHex(t.diffId)}`),
            },
          ]),
        );
        await put('oci-layout', jsonBytes({ imageLayoutVersion: '1.0.0' }));
        const top = tars.at(-1);
        for (const rt of opts.repoTags) {
          const { repo, tag } = splitRepoTag(rt);
          if (top) (repositories[repo] ??= {})[tag] = digestHex(top.diffId);
        }
      } else {
        const ids = chainIds(tars.map((t) => t.diffId)).map((c) => digestHex(sha256(`v1 ${c}`)));
        for (const [i, t] of tars.entries()) {
          const id = ids[i] ?? '';
          const parent = i > 0 ? ids[i - 1] : undefined;
          await put(`${id}/`);
          await put(`${id}/VERSION`, Buffer.from('1.0'));
          await put(
            `${id}/json`,
            Buffer.from(JSON.stringify({ id, ...(parent ? { parent } : {}), created: FIXED_CREATED })),
          );
          await put(`${id}/layer.tar`, fileContent(t));
        }
        await put(`${digestHex(img.id)}.json`, configBytes);
        await put(
          'manifest.json',
          jsonBytes([
            {
              Config: `${digestHex(img.id)}.json`,
              RepoTags: opts.repoTags,
              Layers: ids.map((id) => `${id}/layer.tar`),
            },
          ]),
        );
        const top = ids.at(-1);
        for (const rt of opts.repoTags) {
          const { repo, tag } = splitRepoTag(rt);
          if (top) (repositories[repo] ??= {})[tag] = top;
        }
      }
      await put('repositories', jsonBytes(repositories));
      pack.finalize();
      return manifestDigest;
    })().catch((err: unknown) => {
      pack.destroy(err instanceof Error ? err : new Error(String(err)));
      throw err;
    });
    const [manifestDigest] = await Promise.all([writing, out]);
    return { id: img.id, manifestDigest };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export function compressionOf(mediaType: string): Compression {
  if (mediaType.endsWith('+gzip') || mediaType.endsWith('.gzip')) return 'gzip';
  if (mediaType.endsWith('+zstd') || mediaType.endsWith('.zstd')) return 'zstd';
  return 'none';
}

/** One entry of a layer tar, as read back by `listLayer`. */
export interface TarEntryInfo {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linkname: string | undefined;
  mtime: Date | undefined;
  /** Content of regular files up to 64 KiB. */
  content: Buffer | undefined;
}

/** Reads a layer blob of `layout` back: its tar entries in order (for checks in tests). */
export async function listLayer(layout: OciLayout, desc: Descriptor): Promise<TarEntryInfo[]> {
  const tar = new MemorySink();
  await decompress(compressionOf(desc.mediaType), layout.openBlob(desc.digest), [tar]);
  const ex = tarExtract();
  ex.end(tar.bytes());
  const entries: TarEntryInfo[] = [];
  for await (const entry of ex) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    const h = entry.header;
    entries.push({
      name: h.name,
      type: h.type,
      mode: h.mode,
      uid: h.uid,
      gid: h.gid,
      size: h.size,
      linkname: h.linkname ? h.linkname : undefined,
      mtime: h.mtime,
      content: h.type === 'file' && h.size <= 65536 ? Buffer.concat(chunks) : undefined,
    });
  }
  return entries;
}
