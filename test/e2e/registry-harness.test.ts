/**
 * The registry harness and the test images, checked against the real docker-registry with
 * plain fetch: what is pushed comes back byte for byte under its digest, auth is enforced, a
 * corrupted blob is served corrupted, images are deterministic and their layers hold what the
 * overlay tests expect; the on-disk forms (OCI layout, docker save archive) are well formed.
 */
import assert from 'node:assert/strict';
import { access, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCommand } from '../../src/util/command.js';
import {
  listLayer,
  MANIFEST_ACCEPT,
  MediaType,
  sha256,
  writeDockerArchive,
  writeOciLayout,
  type ImageIndex,
  type OciLayout,
} from './harness/oci-layout.js';
import { basicAuth, startRegistry, type TestRegistry } from './harness/registry.js';
import {
  bigImage,
  busyboxApplets,
  busyboxImage,
  LAYERED_EXPECT,
  layeredImage,
  multiArchIndex,
  otherArch,
  zstdImage,
  ZSTD_FILE,
} from './harness/test-images.js';

const CREDS = { username: 'crisp', password: 's3cret:with colon' };

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function getManifest(
  reg: TestRegistry,
  repo: string,
  ref: string,
): Promise<{ status: number; bytes: Buffer; type: string | null; digest: string | null }> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${ref}`, { headers: { accept: MANIFEST_ACCEPT } });
  return {
    status: res.status,
    bytes: Buffer.from(await res.arrayBuffer()),
    type: res.headers.get('content-type'),
    digest: res.headers.get('docker-content-digest'),
  };
}

async function getBlob(reg: TestRegistry, repo: string, digest: string): Promise<Buffer> {
  const res = await fetch(`${reg.url}/v2/${repo}/blobs/${digest}`);
  assert.equal(res.status, 200, `blob ${digest}`);
  return Buffer.from(await res.arrayBuffer());
}

describe('registry harness and test images', () => {
  const registries: TestRegistry[] = [];
  let registry: TestRegistry;
  let authRegistry: TestRegistry;
  let busybox: OciLayout;
  let multi: OciLayout;
  const scratch: string[] = [];

  before(async () => {
    [busybox, multi] = await Promise.all([busyboxImage(), multiArchIndex()]);
    registry = await startRegistry();
    registries.push(registry);
    authRegistry = await startRegistry({ htpasswd: CREDS });
    registries.push(authRegistry);
  });

  after(async () => {
    await Promise.all(registries.map((r) => r.stop()));
    for (const r of registries) {
      assert.equal(alive(r.pid), false, `registry ${r.pid} still running`);
      assert.equal(await exists(r.storageDir), false, 'registry temp dir left behind');
    }
    await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('listens on 127.0.0.1 only', () => {
    assert.match(registry.host, /^127\.0\.0\.1:\d+$/);
    assert.equal(registry.url, `http://${registry.host}`);
  });

  it('pushes busybox and serves the exact manifest bytes under their digest', async () => {
    const { manifestDigest } = await registry.push('test/busybox', 'latest', busybox);
    assert.equal(manifestDigest, busybox.digest);
    for (const ref of ['latest', busybox.digest]) {
      const m = await getManifest(registry, 'test/busybox', ref);
      assert.equal(m.status, 200);
      assert.equal(m.type, MediaType.ociManifest);
      assert.equal(m.digest, busybox.digest);
      assert.deepEqual(m.bytes, busybox.bytes);
      assert.equal(sha256(m.bytes), busybox.digest);
    }
  });

  it('serves every blob of busybox under its digest', async () => {
    const manifest = busybox.manifest();
    for (const d of [manifest.config, ...manifest.layers]) {
      const bytes = await getBlob(registry, 'test/busybox', d.digest);
      assert.equal(bytes.length, d.size);
      assert.equal(sha256(bytes), d.digest);
    }
  });

  it('pushing again is a no-op that keeps the digest', async () => {
    const again = await registry.push('test/busybox', 'latest', await busyboxImage());
    assert.equal(again.manifestDigest, busybox.digest);
  });

  it('pushes a multi-arch index with its children and the attestation', async () => {
    await registry.push('test/multi', 'v1', multi);
    const top = await getManifest(registry, 'test/multi', 'v1');
    assert.equal(top.status, 200);
    assert.equal(top.type, MediaType.ociIndex);
    assert.equal(top.digest, multi.digest);
    assert.deepEqual(top.bytes, multi.bytes);
    const index = JSON.parse(top.bytes.toString()) as ImageIndex;
    assert.deepEqual(
      index.manifests.map((m) => `${m.platform?.os ?? ''}/${m.platform?.architecture ?? ''}`),
      [`linux/${otherArch}`, `linux/${(await multi.image()).config.architecture}`, 'unknown/unknown'],
    );
    assert.equal(index.manifests[2]?.annotations?.['vnd.docker.reference.type'], 'attestation-manifest');
    assert.equal(index.manifests[2].annotations['vnd.docker.reference.digest'], busybox.digest);
    assert.equal(index.manifests[1]?.digest, busybox.digest);
    for (const child of index.manifests) {
      const m = await getManifest(registry, 'test/multi', child.digest);
      assert.equal(m.status, 200);
      assert.equal(m.type, child.mediaType);
      assert.equal(sha256(m.bytes), child.digest);
      assert.equal(m.bytes.length, child.size);
    }
    const img = await multi.image();
    assert.equal(img.manifestDigest, busybox.digest);
    assert.equal(sha256(await getBlob(registry, 'test/multi', img.id)), img.id);
  });

  it('asks for credentials without them and serves with them', async () => {
    const probe = await fetch(`${authRegistry.url}/v2/`);
    assert.equal(probe.status, 401);
    assert.match(probe.headers.get('www-authenticate') ?? '', /^Basic realm=/);
    const ok = await fetch(`${authRegistry.url}/v2/`, { headers: { authorization: basicAuth(CREDS) } });
    assert.equal(ok.status, 200);
    const wrong = await fetch(`${authRegistry.url}/v2/`, {
      headers: { authorization: basicAuth({ ...CREDS, password: 'nope' }) },
    });
    assert.equal(wrong.status, 401);

    await assert.rejects(
      authRegistry.push('test/busybox', 'latest', busybox, { credentials: { ...CREDS, password: 'nope' } }),
      /HTTP 401/,
    );
    await authRegistry.push('test/busybox', 'latest', busybox);
    const anon = await getManifest(authRegistry, 'test/busybox', 'latest');
    assert.equal(anon.status, 401);
    const res = await fetch(`${authRegistry.url}/v2/test/busybox/manifests/latest`, {
      headers: { accept: MANIFEST_ACCEPT, authorization: basicAuth(CREDS) },
    });
    assert.equal(res.status, 200);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), busybox.bytes);
  });

  it('corruptBlob makes the registry serve wrong bytes under the digest', async () => {
    const layered = await layeredImage();
    await registry.push('test/corrupt', 'latest', layered);
    const layer = layered.manifest().layers[1];
    assert.ok(layer);
    const good = await getBlob(registry, 'test/corrupt', layer.digest);
    const bad = Buffer.from(good);
    bad[bad.length - 1] = (bad[bad.length - 1] ?? 0) ^ 0xff;
    await registry.corruptBlob(layer.digest, bad);
    const served = await getBlob(registry, 'test/corrupt', layer.digest);
    assert.deepEqual(served, bad);
    assert.notEqual(sha256(served), layer.digest);
    await assert.rejects(registry.corruptBlob(sha256('never pushed'), bad));
  });

  it('builds the same digests every time', async () => {
    const [b2, m2, l1, l2] = await Promise.all([
      busyboxImage(),
      multiArchIndex(),
      layeredImage(),
      layeredImage(),
    ]);
    assert.equal(b2.digest, busybox.digest);
    assert.equal(m2.digest, multi.digest);
    assert.equal(l1.digest, l2.digest);
    const docker = await busyboxImage({ format: 'docker' });
    assert.equal(docker.mediaType, MediaType.dockerManifest);
    assert.notEqual(docker.digest, busybox.digest);
    assert.equal(docker.manifest().layers[0]?.digest, busybox.manifest().layers[0]?.digest);
  });

  it('busybox has the applets, users and dirs the tests rely on', async () => {
    const img = await busybox.image();
    assert.deepEqual(img.config.config?.Cmd, ['sh']);
    assert.ok(img.config.config.Env?.some((e) => e.startsWith('PATH=')));
    assert.equal(img.diffIds.length, 1);
    const layer = img.layers[0];
    assert.ok(layer);
    const entries = await listLayer(busybox, layer);
    const byName = new Map(entries.map((e) => [e.name, e]));
    const applets = await busyboxApplets();
    for (const a of [
      'sh',
      'ls',
      'cat',
      'echo',
      'sleep',
      'id',
      'env',
      'true',
      'false',
      'nc',
      'wget',
      'httpd',
    ]) {
      assert.ok(applets.includes(a), `busybox lacks ${a}`);
      assert.equal(byName.get(`bin/${a}`)?.linkname, 'busybox');
    }
    assert.equal(byName.get('bin/busybox')?.mode, 0o755);
    assert.equal(byName.get('tmp/')?.mode, 0o1777);
    assert.match(byName.get('etc/passwd')?.content?.toString() ?? '', /^app:x:1000:1000:/m);
    assert.match(byName.get('etc/group')?.content?.toString() ?? '', /^extra:x:2000:app$/m);
    assert.ok(entries.every((e) => e.mtime?.getTime() === Date.parse('2024-01-01T00:00:00Z')));
  });

  it('layered image layers carry whiteouts, an opaque dir, a hard link, a symlink and setuid', async () => {
    const layered = await layeredImage();
    const img = await layered.image();
    assert.equal(img.layers.length, 4);
    const [, l1, l2, l3] = await Promise.all(img.layers.map((d) => listLayer(layered, d)));
    assert.ok(l1 && l2 && l3);
    assert.deepEqual(
      l1.filter((e) => e.type === 'file').map((e) => e.name),
      ['data/keep', 'data/gone', 'opaque/old', 'hard/a'],
    );
    const names2 = l2.map((e) => e.name);
    assert.ok(names2.includes('data/.wh.gone'));
    assert.ok(names2.indexOf('opaque/.wh..wh..opq') < names2.indexOf('opaque/new'));
    const link = l2.find((e) => e.name === 'hard/b');
    assert.equal(link?.type, 'link');
    assert.equal(link.linkname, 'hard/a');
    const sym = l2.find((e) => e.name === 'link');
    assert.equal(sym?.type, 'symlink');
    assert.equal(sym.linkname, LAYERED_EXPECT.symlinks['/link']);
    const suid = l3.find((e) => e.name === 'usr/local/bin/suid-app');
    assert.equal(suid?.mode, 0o4755);
    assert.equal(suid.uid, 1000);
    assert.equal(suid.gid, 1000);
  });

  it('zstd image: the layer is zstd and its diffId matches the uncompressed tar', async () => {
    const z = await zstdImage();
    const img = await z.image();
    const layer = img.layers[1];
    assert.ok(layer);
    assert.equal(layer.mediaType, MediaType.ociLayerZstd);
    const blob = await z.readBlob(layer.digest);
    assert.deepEqual([...blob.subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd]);
    const entries = await listLayer(z, layer); // decompresses with the zstd binary, checks nothing
    assert.equal(entries.find((e) => e.name === 'zstd/hello.txt')?.content?.toString(), ZSTD_FILE.content);
    await registry.push('test/zstd', 'latest', z);
    assert.deepEqual(await getBlob(registry, 'test/zstd', layer.digest), blob);
  });

  it('big image: streamed to files, pushed, disposed', async () => {
    const big = await bigImage(6, 3);
    try {
      const img = await big.image();
      assert.equal(img.layers.length, 4);
      const dataLayers = img.layers.slice(1);
      const total = dataLayers.reduce((n, l) => n + l.size, 0);
      assert.ok(total > 6 * 1024 * 1024, `random data should not compress (${total} bytes)`);
      const again = await bigImage(6, 3);
      assert.equal(again.digest, big.digest);
      await again.dispose();
      await registry.push('test/big', 'latest', big);
      const last = dataLayers[2];
      assert.ok(last);
      assert.equal(sha256(await getBlob(registry, 'test/big', last.digest)), last.digest);
    } finally {
      await big.dispose();
    }
    for (const d of big.tempDirs) assert.equal(await exists(d), false);
  });

  it('writes an OCI image layout directory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'crisp-oci-layout-'));
    scratch.push(dir);
    await writeOciLayout(multi, dir, { refName: 'v1', imageName: 'example.test/multi:v1' });
    assert.deepEqual(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')), {
      imageLayoutVersion: '1.0.0',
    });
    const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as ImageIndex;
    assert.equal(index.manifests[0]?.digest, multi.digest);
    assert.equal(index.manifests[0].annotations?.['org.opencontainers.image.ref.name'], 'v1');
    const blobs = await readdir(join(dir, 'blobs', 'sha256'));
    assert.equal(blobs.length, multi.blobs.size + 1);
    for (const hex of blobs) {
      assert.equal(sha256(await readFile(join(dir, 'blobs', 'sha256', hex))), `sha256:${hex}`);
    }
  });

  for (const format of ['oci', 'legacy'] as const) {
    it(`writes a docker save archive (${format})`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'crisp-docker-archive-test-'));
      scratch.push(dir);
      const file = join(dir, 'image.tar');
      const z = await zstdImage();
      const res = await writeDockerArchive(z, file, { repoTags: ['example.test/zstd:v1'], format });
      assert.equal(res.id, (await z.image()).id);
      const { stdout } = await runCommand('tar', ['-tf', file]);
      const names = stdout.split('\n');
      assert.ok(names.includes('manifest.json'));
      assert.ok(names.includes('repositories'));
      const out = join(dir, 'x');
      await mkdir(out);
      await runCommand('tar', ['-xf', file, '-C', out]);
      const [entry] = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as {
        Config: string;
        RepoTags: string[];
        Layers: string[];
      }[];
      assert.ok(entry);
      assert.deepEqual(entry.RepoTags, ['example.test/zstd:v1']);
      assert.equal(sha256(await readFile(join(out, entry.Config))), res.id);
      const img = await z.image();
      assert.deepEqual(
        await Promise.all(entry.Layers.map(async (l) => sha256(await readFile(join(out, l))))),
        img.diffIds,
      );
      if (format === 'oci') {
        assert.ok(res.manifestDigest);
        const idx = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as ImageIndex;
        assert.equal(idx.manifests[0]?.digest, res.manifestDigest);
      }
    });
  }
});
