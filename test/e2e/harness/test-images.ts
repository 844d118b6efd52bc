/**
 * The images the e2e tests pull, built by the project itself (oci-layout.ts) from the host's
 * static busybox (/bin/busybox from Debian's busybox-static): no network, no docker. Each
 * function returns an `OciLayout` to push to the test registry or write to disk. Digests are
 * stable across calls and runs on one machine (they change only with the host's busybox).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommand } from '../../../src/util/command.js';
import {
  buildImage,
  buildIndex,
  buildLayer,
  hostArch,
  jsonBytes,
  MediaType,
  pseudoRandomStream,
  rawLayer,
  type Compression,
  type ImageConfigOptions,
  type Layer,
  type LayerEntry,
  type ManifestFormat,
  type OciLayout,
} from './oci-layout.js';

export const BUSYBOX_PATH = '/bin/busybox';
export const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The users and groups of the busybox image's /etc/passwd and /etc/group. */
export const TEST_USERS = {
  root: { uid: 0, gid: 0, home: '/root' },
  nobody: { uid: 65534, gid: 65534, home: '/nonexistent' },
  app: { uid: 1000, gid: 1000, home: '/home/app', supplementaryGroups: [2000] },
} as const;
export const TEST_GROUPS = { root: 0, nobody: 65534, app: 1000, extra: 2000 } as const;

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'nobody:x:65534:65534:nobody:/nonexistent:/bin/false',
  'app:x:1000:1000:app:/home/app:/bin/sh',
  '',
].join('\n');
const GROUP = ['root:x:0:', 'nobody:x:65534:', 'app:x:1000:', 'extra:x:2000:app', ''].join('\n');

const busyboxConfig: ImageConfigOptions = { env: [DEFAULT_PATH_ENV], cmd: ['sh'] };

let appletsPromise: Promise<string[]> | undefined;

/** Every applet the host's busybox offers (`busybox --list`), sorted. */
export function busyboxApplets(): Promise<string[]> {
  appletsPromise ??= runCommand(BUSYBOX_PATH, ['--list']).then(({ stdout }) =>
    stdout
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && l !== 'busybox' && !l.includes('/'))
      .sort(),
  );
  return appletsPromise;
}

/** The entries of the busybox base layer. */
export async function busyboxEntries(): Promise<LayerEntry[]> {
  const [binary, applets] = await Promise.all([readFile(BUSYBOX_PATH), busyboxApplets()]);
  const dir = (path: string, mode = 0o755, uid = 0, gid = 0): LayerEntry => ({
    type: 'dir',
    path,
    mode,
    uid,
    gid,
  });
  return [
    dir('bin'),
    dir('dev'),
    dir('etc'),
    dir('home'),
    dir('home/app', 0o755, 1000, 1000),
    dir('proc'),
    dir('root', 0o700),
    dir('run'),
    dir('sbin'),
    dir('sys'),
    dir('tmp', 0o1777),
    dir('usr'),
    dir('usr/bin'),
    dir('usr/sbin'),
    dir('var'),
    dir('var/tmp', 0o1777),
    { type: 'file', path: 'bin/busybox', content: binary, mode: 0o755 },
    ...applets.map((a): LayerEntry => ({ type: 'symlink', path: `bin/${a}`, target: 'busybox' })),
    // for scripts that say #!/usr/bin/env
    { type: 'symlink', path: 'usr/bin/env', target: '/bin/busybox' },
    { type: 'file', path: 'etc/passwd', content: PASSWD },
    { type: 'file', path: 'etc/group', content: GROUP },
  ];
}

const busyboxLayers = new Map<Compression, Promise<Layer>>();

/** The busybox base layer (built once per process and compression). */
export function busyboxLayer(compression: Compression = 'gzip'): Promise<Layer> {
  let layer = busyboxLayers.get(compression);
  if (!layer) {
    layer = busyboxEntries().then((entries) => buildLayer(entries, { compression }));
    layer.catch(() => busyboxLayers.delete(compression));
    busyboxLayers.set(compression, layer);
  }
  return layer;
}

export interface BusyboxImageOptions {
  /** Manifest type: OCI (default) or Docker schema2. */
  format?: ManifestFormat;
  compression?: Compression;
  /** Config overrides (Cmd, Env, User, Labels, ...), merged over busybox's Cmd ["sh"] and PATH. */
  config?: ImageConfigOptions;
}

/**
 * busybox: one layer with /bin/busybox and a symlink /bin/<applet> for every applet it lists,
 * /etc/passwd and /etc/group (root, nobody, app 1000:1000 also in group extra 2000), /tmp 1777,
 * /home/app owned by app. Cmd ["sh"], Env PATH.
 */
export async function busyboxImage(opts: BusyboxImageOptions = {}): Promise<OciLayout> {
  const layer = await busyboxLayer(opts.compression);
  return buildImage([layer], {
    format: opts.format ?? 'oci',
    config: { ...busyboxConfig, ...opts.config },
  });
}

/**
 * What the layered image's root filesystem must look like once its layers are applied (for
 * the overlay-conversion tests). Paths are absolute in the container.
 */
export const LAYERED_EXPECT = {
  /** Files and their content. */
  files: {
    '/data/keep': 'keep\n',
    '/opaque/new': 'new\n',
    '/hard/a': 'a from layer 2\n',
    '/hard/b': 'a from layer 2\n',
    '/usr/local/bin/suid-app': '#!/bin/sh\nid\n',
  },
  /** Must not exist. */
  absent: ['/data/gone', '/opaque/old', '/data/.wh.gone', '/opaque/.wh..wh..opq'],
  /** /hard/b is a hard link of /hard/a (same inode, link count 2). */
  hardLinks: [['/hard/a', '/hard/b']],
  symlinks: { '/link': '/data/keep' },
  /** mode 04755, owner 1000:1000. */
  setuid: { path: '/usr/local/bin/suid-app', mode: 0o4755, uid: 1000, gid: 1000 },
} as const;

/**
 * Four layers exercising the overlay conversion, busybox first (so it runs):
 * 1. /data/keep, /data/gone, /opaque/old, /hard/a;
 * 2. whiteout /data/gone (`.wh.gone`), /opaque made opaque (`.wh..wh..opq`) plus /opaque/new,
 *    /hard/a rewritten and /hard/b a hard link to it, a symlink /link → /data/keep;
 * 3. /usr/local/bin/suid-app, mode 4755, owned by 1000:1000.
 * A hard link can only name a file earlier in the same tar, so layer 2 carries /hard/a again
 * (which also checks that an upper layer's file replaces a lower one).
 */
export async function layeredImage(opts: { format?: ManifestFormat } = {}): Promise<OciLayout> {
  const base = await busyboxLayer();
  const l1 = await buildLayer([
    { type: 'dir', path: 'data' },
    { type: 'file', path: 'data/keep', content: 'keep\n' },
    { type: 'file', path: 'data/gone', content: 'gone\n' },
    { type: 'dir', path: 'opaque' },
    { type: 'file', path: 'opaque/old', content: 'old\n' },
    { type: 'dir', path: 'hard' },
    { type: 'file', path: 'hard/a', content: 'a from layer 1\n' },
  ]);
  const l2 = await buildLayer([
    { type: 'dir', path: 'data' },
    { type: 'whiteout', path: 'data/gone' },
    { type: 'dir', path: 'opaque' },
    { type: 'opaque', path: 'opaque' },
    { type: 'file', path: 'opaque/new', content: 'new\n' },
    { type: 'dir', path: 'hard' },
    { type: 'file', path: 'hard/a', content: 'a from layer 2\n' },
    { type: 'hardlink', path: 'hard/b', target: 'hard/a' },
    { type: 'symlink', path: 'link', target: '/data/keep' },
  ]);
  const l3 = await buildLayer([
    { type: 'dir', path: 'usr/local' },
    { type: 'dir', path: 'usr/local/bin' },
    {
      type: 'file',
      path: 'usr/local/bin/suid-app',
      content: '#!/bin/sh\nid\n',
      mode: 0o4755,
      uid: 1000,
      gid: 1000,
    },
  ]);
  return buildImage([base, l1, l2, l3], {
    format: opts.format ?? 'oci',
    config: { ...busyboxConfig, labels: { 'org.crisp.test': 'layered' } },
  });
}

export const ZSTD_FILE = { path: '/zstd/hello.txt', content: 'hello from a zstd layer\n' } as const;

/** busybox (gzip) plus a zstd layer (application/vnd.oci.image.layer.v1.tar+zstd) with ZSTD_FILE. */
export async function zstdImage(): Promise<OciLayout> {
  const base = await busyboxLayer();
  const z = await buildLayer([{ type: 'file', path: ZSTD_FILE.path, content: ZSTD_FILE.content }], {
    compression: 'zstd',
  });
  return buildImage([base, z], { config: busyboxConfig });
}

/** The architecture of the multi-arch index's fake (non-runnable) image. */
export const otherArch = hostArch === 'arm64' ? 'amd64' : 'arm64';

/**
 * An OCI index, in this order: a small fake image for `otherArch` (arm64 on an amd64 host: one
 * file /arch.txt; it cannot run), busybox for the host arch, and a buildx-style attestation
 * manifest (platform unknown/unknown, annotated vnd.docker.reference.type=attestation-manifest
 * and vnd.docker.reference.digest=<the busybox manifest digest>).
 */
export async function multiArchIndex(opts: { format?: ManifestFormat } = {}): Promise<OciLayout> {
  const format = opts.format ?? 'oci';
  const fakeLayer = await buildLayer([{ type: 'file', path: 'arch.txt', content: `${otherArch}\n` }]);
  const fake = buildImage([fakeLayer], {
    format,
    config: {
      architecture: otherArch,
      ...(otherArch === 'arm64' ? { variant: 'v8' } : {}),
      cmd: ['/arch.txt'],
    },
  });
  const busybox = await busyboxImage({ format });
  const statement = jsonBytes({
    _type: 'https://in-toto.io/Statement/v0.1',
    predicateType: 'https://spdx.dev/Document',
    subject: [{ name: 'busybox', digest: { sha256: busybox.digest.slice('sha256:'.length) } }],
    predicate: { spdxVersion: 'SPDX-2.3', name: 'crisp-test' },
  });
  const att = rawLayer(statement, MediaType.inToto, {
    'in-toto.io/predicate-type': 'https://spdx.dev/Document',
  });
  const attestation = buildImage([att], {
    format: 'oci',
    rawConfig: {
      bytes: jsonBytes({
        architecture: 'unknown',
        os: 'unknown',
        config: {},
        rootfs: { type: 'layers', diff_ids: [att.diffId] },
      }),
      mediaType: MediaType.ociConfig,
    },
  });
  return buildIndex(
    [
      { image: fake },
      { image: busybox },
      {
        image: attestation,
        platform: { architecture: 'unknown', os: 'unknown' },
        annotations: {
          'vnd.docker.reference.digest': busybox.digest,
          'vnd.docker.reference.type': 'attestation-manifest',
        },
      },
    ],
    { format },
  );
}

export interface BigImageOptions {
  /** Where to write the blobs (default: a new temp dir, removed by `layout.dispose()`). */
  dir?: string;
  compression?: Compression;
  /** Seed of the pseudo-random data (default "crisp-big-image"). */
  seed?: string;
}

/**
 * busybox plus `layers` layers of incompressible pseudo-random data, `totalMiB` in all (one
 * file /bench/data-<n>.bin per layer), for the pull benchmark. Streamed to files in a temp dir
 * (never held in memory); call `dispose()` on the layout when done. gzip at level 0 (stored
 * blocks): random data does not compress, and deflate at any level falls back to stored blocks
 * for it, so this is what a real gzip layer of such data looks like, built 4x faster.
 */
export async function bigImage(totalMiB = 200, layers = 4, opts: BigImageOptions = {}): Promise<OciLayout> {
  if (layers < 1 || totalMiB <= 0) throw new Error('bigImage needs at least one layer and some data');
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'crisp-big-image-')));
  const total = Math.round(totalMiB * 1024 * 1024);
  const per = Math.floor(total / layers);
  const seed = opts.seed ?? 'crisp-big-image';
  try {
    const base = await busyboxLayer();
    const data: Layer[] = [];
    for (let i = 0; i < layers; i++) {
      const size = i === layers - 1 ? total - per * (layers - 1) : per;
      data.push(
        await buildLayer(
          [
            {
              type: 'file',
              path: `bench/data-${i}.bin`,
              content: { size, open: () => pseudoRandomStream(`${seed}/${i}`, size) },
            },
          ],
          { compression: opts.compression ?? 'gzip', gzipLevel: 0, dir },
        ),
      );
    }
    return buildImage([base, ...data], {
      config: { ...busyboxConfig, labels: { 'org.crisp.test': 'big' } },
      tempDirs: opts.dir === undefined ? [dir] : [],
    });
  } catch (err) {
    if (opts.dir === undefined) await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
