/**
 * The image service against real registry servers (Debian's docker-registry on 127.0.0.1) with
 * the project's own test images: pulls direct and through a mirror, auth, indexes, zstd,
 * overlay conversion checked by mounting the layers, removal and garbage collection, bad
 * registries and bad content, import, and persistence across a restart.
 */
import assert from 'node:assert/strict';
import { access, lstat, mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pack } from 'tar-stream';
import { status as GrpcCode } from '@grpc/grpc-js';
import { runCommand } from '../../src/util/command.js';
import { connectCri, rejection, type CriClients } from './harness/cri-client.js';
import {
  makeTestDirs,
  removeTestDirs,
  runCrisp,
  spawnCrisp,
  startCrisp,
  type RunningCrisp,
  type TestDirs,
} from './harness/daemon.js';
import {
  buildImage,
  buildLayer,
  rawLayer,
  writeDockerArchive,
  writeOciLayout,
  type OciLayout,
} from './harness/oci-layout.js';
import { startRegistry, freePort, type TestRegistry } from './harness/registry.js';
import {
  LAYERED_EXPECT,
  ZSTD_FILE,
  busyboxImage,
  busyboxLayer,
  layeredImage,
  multiArchIndex,
  zstdImage,
} from './harness/test-images.js';

const exists = (p: string): Promise<boolean> =>
  access(p).then(
    () => true,
    () => false,
  );

async function tarOf(entries: { name: string; content: string }[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of p) chunks.push(c as Buffer);
  })();
  for (const e of entries) p.entry({ name: e.name, mode: 0o644, mtime: new Date(0) }, e.content);
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

interface VerboseInfo {
  layerDirs: string[];
  config: { cmd: string[]; env: string[] };
  layers: { diffId: string }[];
}

describe('image service against real registries', () => {
  let open: TestRegistry; // the main registry, plain http
  let secured: TestRegistry; // basic auth
  let origin: TestRegistry; // the "origin" behind registry.example.test
  let crisp: RunningCrisp;
  let dirs: TestDirs;
  let cri: CriClients;
  let deadPort: number;
  const layouts = {} as {
    busybox: OciLayout;
    layered: OciLayout;
    zstd: OciLayout;
    multi: OciLayout;
    docker: OciLayout;
    originOnly: OciLayout;
  };
  const creds = { username: 'puller', password: 's3cret-pw' };

  const pull = async (image: string, auth?: Record<string, string>): Promise<string> =>
    (await cri.image.PullImage({ image: { image }, ...(auth ? { auth } : {}) }, 120_000)).image_ref;
  const status = async (image: string, verbose = false) =>
    cri.image.ImageStatus({ image: { image }, verbose });
  const verbose = async (image: string): Promise<VerboseInfo> =>
    JSON.parse((await status(image, true)).info.info ?? '{}') as VerboseInfo;

  before(async () => {
    [open, secured, origin] = await Promise.all([
      startRegistry(),
      startRegistry({ htpasswd: creds }),
      startRegistry(),
    ]);
    deadPort = await freePort();
    layouts.busybox = await busyboxImage();
    layouts.layered = await layeredImage();
    layouts.zstd = await zstdImage();
    layouts.multi = await multiArchIndex();
    layouts.docker = await busyboxImage({ format: 'docker', config: { labels: { format: 'docker' } } });
    layouts.originOnly = await busyboxImage({ config: { labels: { where: 'origin' } } });
    await open.push('library/busybox', '1.0', layouts.busybox);
    await open.push('layered', '1', layouts.layered);
    await open.push('zstd', '1', layouts.zstd);
    await open.push('multi', '1', layouts.multi);
    await open.push('docker-format', '1', layouts.docker);
    await secured.push('private/busybox', '1', layouts.busybox);
    await origin.push('origin-only', '1', layouts.originOnly);

    dirs = await makeTestDirs();
    const registriesConf = join(dirs.base, 'registries.conf');
    await writeFile(
      registriesConf,
      [
        'unqualified-search-registries = []',
        ...[open, secured, origin].flatMap((r) => [
          '[[registry]]',
          `location = "${r.host}"`,
          'insecure = true',
        ]),
        '[[registry]]',
        `location = "127.0.0.1:${deadPort}"`,
        'insecure = true',
        '[[registry]]',
        'prefix = "registry.example.test"',
        `location = "${origin.host}"`,
        'insecure = true',
        '[[registry.mirror]]',
        `location = "${open.host}"`,
        'insecure = true',
        '',
      ].join('\n'),
    );
    crisp = await startCrisp(dirs, {
      extraToml: ['[image]', `registries_config = ${JSON.stringify(registriesConf)}`].join('\n'),
    });
    cri = await connectCri(dirs.socket);
  });

  after(async () => {
    cri.close();
    await crisp.stop();
    await Promise.all([open.stop(), secured.stop(), origin.stop()]);
    await removeTestDirs(dirs);
  });

  it('has the built-in pause image, pinned, without any registry', async () => {
    const res = await status('localhost/crisp/pause:latest');
    assert.ok(res.image, 'pause image present');
    assert.equal(res.image.pinned, true);
    assert.equal(res.image.uid?.value, '65535');
  });

  it('pulls busybox from the registry and reports it everywhere', async () => {
    const want = await layouts.busybox.image();
    const ref = `${open.host}/library/busybox:1.0`;
    assert.equal(await pull(ref), want.id);

    const list = await cri.image.ListImages({});
    const img = list.images.find((i) => i.id === want.id);
    assert.ok(img, 'listed');
    assert.deepEqual(img.repo_tags, [ref]);
    assert.deepEqual(img.repo_digests, [`${open.host}/library/busybox@${want.manifestDigest}`]);
    assert.ok(Number(img.size) > 500_000, `size ${img.size}`);

    for (const spec of [
      ref,
      want.id,
      want.id.slice(7, 19),
      `${open.host}/library/busybox@${want.manifestDigest}`,
    ]) {
      assert.equal((await status(spec)).image?.id, want.id, `ImageStatus(${spec})`);
    }
    const filtered = await cri.image.ListImages({ filter: { image: { image: ref } } });
    assert.deepEqual(
      filtered.images.map((i) => i.id),
      [want.id],
    );

    const info = await verbose(ref);
    assert.deepEqual(info.config.cmd, ['sh']);
    assert.equal(info.layerDirs.length, 1);
    const busybox = await stat(join(info.layerDirs[0] ?? '', 'bin/busybox'));
    assert.ok(busybox.isFile() && (busybox.mode & 0o111) !== 0, 'busybox unpacked and executable');
    assert.equal((await status(`${open.host}/library/busybox:nope`)).image, null);
  });

  it('pulls a Docker schema2 image', async () => {
    const want = await layouts.docker.image();
    assert.equal(await pull(`${open.host}/docker-format:1`), want.id);
  });

  it('picks the host platform from a multi-arch index and records the index digest', async () => {
    const want = await layouts.multi.image();
    assert.equal(await pull(`${open.host}/multi:1`), want.id);
    // Its amd64 entry is the busybox image pulled before, so the record gains a tag and a digest.
    const img = (await status(`${open.host}/multi:1`)).image;
    assert.ok(
      img?.repo_digests.includes(`${open.host}/multi@${layouts.multi.digest}`),
      String(img?.repo_digests),
    );
    assert.ok(img?.repo_tags.includes(`${open.host}/multi:1`));
  });

  it('unpacks layers into overlay form: whiteouts, opaque dirs, hard links, symlinks, setuid', async () => {
    const want = await layouts.layered.image();
    assert.equal(await pull(`${open.host}/layered:1`), want.id);
    const info = await verbose(`${open.host}/layered:1`);
    assert.equal(info.layerDirs.length, want.layers.length);
    const mnt = await mkdtemp(join(tmpdir(), 'crisp-e2e-mnt-'));
    await runCommand('mount', [
      '-t',
      'overlay',
      'overlay',
      '-o',
      `ro,lowerdir=${info.layerDirs.join(':')}`,
      mnt,
    ]);
    try {
      for (const [path, content] of Object.entries(LAYERED_EXPECT.files)) {
        assert.equal(await readFile(join(mnt, path), 'utf8'), content, path);
      }
      for (const path of LAYERED_EXPECT.absent)
        assert.equal(await exists(join(mnt, path)), false, `${path} absent`);
      for (const [a, b] of LAYERED_EXPECT.hardLinks) {
        assert.equal(
          (await stat(join(mnt, a))).ino,
          (await stat(join(mnt, b))).ino,
          `${a} and ${b} are one file`,
        );
      }
      for (const [link, target] of Object.entries(LAYERED_EXPECT.symlinks)) {
        assert.ok((await lstat(join(mnt, link))).isSymbolicLink());
        assert.equal(await readlink(join(mnt, link)), target);
      }
      const s = await stat(join(mnt, LAYERED_EXPECT.setuid.path));
      assert.equal(s.mode & 0o7777, LAYERED_EXPECT.setuid.mode);
      assert.equal(s.uid, LAYERED_EXPECT.setuid.uid);
      assert.equal(s.gid, LAYERED_EXPECT.setuid.gid);
    } finally {
      await runCommand('umount', [mnt]);
      await rm(mnt, { recursive: true, force: true });
    }
  });

  it('pulls a zstd-compressed layer', async () => {
    const want = await layouts.zstd.image();
    assert.equal(await pull(`${open.host}/zstd:1`), want.id);
    const info = await verbose(`${open.host}/zstd:1`);
    assert.equal(await readFile(join(info.layerDirs[0] ?? '', ZSTD_FILE.path), 'utf8'), ZSTD_FILE.content);
  });

  it('pulls a made-up public name through its mirror, and falls back to the origin', async () => {
    const busybox = await layouts.busybox.image();
    assert.equal(await pull('registry.example.test/library/busybox:1.0'), busybox.id);
    const img = (await status('registry.example.test/library/busybox:1.0')).image;
    assert.ok(img?.repo_tags.includes('registry.example.test/library/busybox:1.0'));
    assert.ok(img?.repo_tags.includes(`${open.host}/library/busybox:1.0`), 'both tags on one image');

    const originOnly = await layouts.originOnly.image();
    assert.equal(await pull('registry.example.test/origin-only:1'), originOnly.id);
  });

  it('authenticates with basic credentials from the CRI AuthConfig', async () => {
    const ref = `${secured.host}/private/busybox:1`;
    const anonymous = await rejection(pull(ref));
    assert.equal(anonymous.code, GrpcCode.UNAUTHENTICATED, anonymous.details);
    assert.ok(anonymous.details.includes(secured.host), anonymous.details);
    assert.match(anonymous.details, /401/);

    const wrong = await rejection(pull(ref, { username: creds.username, password: 'wrong' }));
    assert.equal(wrong.code, GrpcCode.UNAUTHENTICATED, wrong.details);
    assert.ok(!wrong.details.includes('wrong'), 'the password is not echoed');

    const want = await layouts.busybox.image();
    assert.equal(await pull(ref, creds), want.id);
    const auth = Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
    assert.equal(await pull(ref, { auth }), want.id);
  });

  it('reports unknown tags, unreachable registries and bad references clearly', async () => {
    const unknown = await rejection(pull(`${open.host}/library/busybox:nope`));
    assert.equal(unknown.code, GrpcCode.NOT_FOUND, unknown.details);
    assert.ok(unknown.details.includes(`${open.host}/library/busybox:nope`), unknown.details);

    const unreachable = await rejection(pull(`127.0.0.1:${deadPort}/x:1`));
    assert.equal(unreachable.code, GrpcCode.UNAVAILABLE, unreachable.details);
    assert.ok(unreachable.details.includes(`127.0.0.1:${deadPort}`), unreachable.details);

    const bad = await rejection(pull('Not A/Valid::Ref'));
    assert.equal(bad.code, GrpcCode.INVALID_ARGUMENT, bad.details);
    assert.ok(bad.details.includes('Not A/Valid::Ref'), bad.details);
  });

  it('refuses a corrupted or truncated blob and keeps nothing of it', async () => {
    for (const [name, damage] of [
      ['corrupt', (b: Buffer) => Buffer.from(b.map((x) => x ^ 0xff))],
      ['truncated', (b: Buffer) => b.subarray(0, Math.floor(b.length / 2))],
    ] as const) {
      const extra = await buildLayer([{ type: 'file', path: `${name}.txt`, content: `${name} layer\n` }]);
      const image = buildImage([await busyboxLayer(), extra], { config: { cmd: ['sh'] } });
      await open.push(name, '1', image);
      const bytes = await image.readBlob(extra.digest);
      await open.corruptBlob(extra.digest, damage(bytes));
      const err = await rejection(pull(`${open.host}/${name}:1`));
      assert.notEqual(err.code, GrpcCode.OK);
      assert.ok(
        [GrpcCode.UNAVAILABLE, GrpcCode.FAILED_PRECONDITION].includes(err.code),
        `${name}: ${err.details}`,
      );
      assert.ok(
        err.details.includes(extra.digest.slice(7, 19)),
        `${name}: the message names the blob: ${err.details}`,
      );
      assert.equal((await status(`${open.host}/${name}:1`)).image, null, 'no image recorded');
      const layers = await readdir(join(dirs.root, 'layers'));
      assert.ok(!layers.some((l) => l.includes(extra.diffId.slice(7))), 'no layer kept');
    }
    // Other images are intact.
    assert.ok((await status(`${open.host}/library/busybox:1.0`)).image);
  });

  it('refuses hostile tar entries, naming the entry, and keeps nothing', async () => {
    const tar = await tarOf([{ name: '../../escaped.txt', content: 'out\n' }]);
    const hostile = rawLayer(tar, 'application/vnd.oci.image.layer.v1.tar');
    const image = buildImage([await busyboxLayer(), hostile], { config: { cmd: ['sh'] } });
    await open.push('hostile', '1', image);
    const err = await rejection(pull(`${open.host}/hostile:1`));
    assert.ok([GrpcCode.FAILED_PRECONDITION, GrpcCode.INVALID_ARGUMENT].includes(err.code), err.details);
    assert.match(err.details, /escaped\.txt/);
    assert.equal((await status(`${open.host}/hostile:1`)).image, null);
    assert.equal(await exists(join(dirs.root, 'escaped.txt')), false);
    assert.equal(await exists(join(dirs.root, 'layers', 'escaped.txt')), false);
  });

  it('serves concurrent pulls of one image with one result, downloading each layer once', async () => {
    const want = await layouts.layered.image();
    const busybox = await layouts.busybox.image();
    await cri.image.RemoveImage({ image: { image: `${open.host}/layered:1` } });
    const pulledBytes = async (): Promise<number> => {
      const text = await (await fetch(`${crisp.metricsUrl}/metrics`)).text();
      return Number(/^crisp_image_pull_bytes_total (\d+)/m.exec(text)?.[1] ?? NaN);
    };
    const before = await pulledBytes();
    const ids = await Promise.all([1, 2, 3].map(() => pull(`${open.host}/layered:1`)));
    assert.deepEqual(ids, [want.id, want.id, want.id]);
    // busybox's layer is still in the store (the busybox image uses it); the others come once.
    const expected = want.layers
      .filter((l) => !busybox.layers.some((b) => b.digest === l.digest))
      .reduce((sum, l) => sum + l.size, 0);
    assert.equal((await pulledBytes()) - before, expected);
  });

  it('removes a tag, then the image, deleting only layers nothing else uses', async () => {
    const busybox = await layouts.busybox.image();
    // Two tags: removing one keeps the image.
    const tagsBefore = (await status(busybox.id)).image?.repo_tags ?? [];
    assert.ok(tagsBefore.includes('registry.example.test/library/busybox:1.0'));
    await cri.image.RemoveImage({ image: { image: 'registry.example.test/library/busybox:1.0' } });
    const kept = (await status(busybox.id)).image;
    assert.deepEqual(
      kept?.repo_tags,
      tagsBefore.filter((t) => t !== 'registry.example.test/library/busybox:1.0'),
    );

    // The zstd image has a layer of its own and shares busybox's.
    const zstd = await layouts.zstd.image();
    const zInfo = await verbose(zstd.id);
    const [ownLayer, sharedLayer] = zInfo.layerDirs;
    assert.ok(ownLayer && sharedLayer);
    await cri.image.RemoveImage({ image: { image: zstd.id } });
    assert.equal((await status(zstd.id)).image, null);
    assert.equal(await exists(ownLayer), false, 'its own layer is deleted');
    assert.equal(await exists(sharedLayer), true, 'the shared busybox layer stays');

    // Idempotent.
    await cri.image.RemoveImage({ image: { image: zstd.id } });
    await cri.image.RemoveImage({ image: { image: `${open.host}/never-pulled:1` } });
  });

  it('reports image filesystem usage', async () => {
    const res = await cri.image.ImageFsInfo({});
    const fs = res.image_filesystems[0];
    assert.ok(fs);
    assert.equal(fs.fs_id?.mountpoint, join(dirs.root, 'layers'));
    assert.ok(Number(fs.used_bytes?.value) > 1_000_000);
    assert.ok(Number(fs.inodes_used?.value) > 10);
    assert.ok(BigInt(fs.timestamp) > 0n);
  });

  it('imports an OCI layout directory through the running daemon', async () => {
    const image = await busyboxImage({ config: { labels: { imported: 'oci-layout' } } });
    const dir = await mkdtemp(join(tmpdir(), 'crisp-e2e-layout-'));
    try {
      await writeOciLayout(image, dir, { imageName: 'docker.io/library/imported:1' });
      const res = await runCrisp(['image', 'import', dir, '--config', dirs.configFile]);
      assert.equal(res.code, 0, res.stderr);
      const want = await image.image();
      assert.match(res.stdout, new RegExp(`imported ${want.id} docker.io/library/imported:1`));
      assert.equal((await status('imported:1')).image?.id, want.id);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('counts pulls and bytes in the metrics', async () => {
    const text = await (await fetch(`${crisp.metricsUrl}/metrics`)).text();
    assert.match(text, /^crisp_image_pulls_total\{result="success"\} \d+$/m);
    assert.match(text, /^crisp_image_pulls_total\{result="failure"\} \d+$/m);
    const bytes = /^crisp_image_pull_bytes_total (\d+)/m.exec(text);
    assert.ok(bytes?.[1] && Number(bytes[1]) > 1_000_000, `pull bytes ${bytes?.[1] ?? 'missing'}`);
    assert.match(text, /^crisp_image_pull_duration_seconds_count \d+$/m);
  });

  it('keeps every image across a restart', async () => {
    const before = (await cri.image.ListImages({})).images.map((i) => i.id).sort();
    cri.close();
    assert.equal((await crisp.stop()).code, 0);
    crisp = spawnCrisp(dirs);
    await crisp.ready();
    cri = await connectCri(dirs.socket);
    const after = (await cri.image.ListImages({})).images.map((i) => i.id).sort();
    assert.deepEqual(after, before);
  });
});

describe('offline import of a docker save archive', () => {
  it('loads the archive with the daemon stopped, and the daemon lists it after start', async () => {
    const dirs = await makeTestDirs();
    const archive = join(dirs.base, 'busybox.tar');
    try {
      const image = await busyboxImage({ config: { labels: { imported: 'docker-save' } } });
      const { id } = await writeDockerArchive(image, archive, {
        repoTags: ['saved/busybox:2'],
        format: 'legacy',
      });
      const crisp = await startCrisp(dirs);
      await crisp.stop();
      const res = await runCrisp(['image', 'import', archive, '--config', dirs.configFile]);
      assert.equal(res.code, 0, res.stderr);
      assert.match(res.stdout, new RegExp(`imported ${id} docker.io/saved/busybox:2`));
      const again = spawnCrisp(dirs);
      await again.ready();
      const cri = await connectCri(dirs.socket);
      try {
        const img = (await cri.image.ImageStatus({ image: { image: 'saved/busybox:2' }, verbose: false }))
          .image;
        assert.equal(img?.id, id);
      } finally {
        cri.close();
        await again.stop();
      }
    } finally {
      await removeTestDirs(dirs);
    }
  });

  it('refuses a path that is not an image, naming it', async () => {
    const dirs = await makeTestDirs();
    try {
      await startCrisp(dirs).then((c) => c.stop());
      const res = await runCrisp(['image', 'import', dirs.base, '--config', dirs.configFile]);
      assert.equal(res.code, 1);
      assert.ok(res.stderr.includes(dirs.base), res.stderr);
    } finally {
      await removeTestDirs(dirs);
    }
  });
});
