import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FailedPreconditionError, NotFoundError } from '../errors.js';
import {
  computeDigest,
  digestProblem,
  hostPlatform,
  parseImageConfig,
  parseManifest,
  selectPlatform,
  type Descriptor,
  type ParsedIndex,
} from './manifest.js';
import {
  DOCKER_CONFIG,
  DOCKER_LAYER_GZIP,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_LAYER_GZIP,
  OCI_MANIFEST,
} from './media-types.js';

const d = (n: number): string => `sha256:${n.toString(16).padStart(64, '0')}`;
const json = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

const ociManifest = {
  schemaVersion: 2,
  mediaType: OCI_MANIFEST,
  config: { mediaType: OCI_CONFIG, digest: d(1), size: 100 },
  layers: [
    { mediaType: OCI_LAYER_GZIP, digest: d(2), size: 200 },
    { mediaType: OCI_LAYER_GZIP, digest: d(3), size: 300, annotations: { a: 'b' } },
  ],
};

const rejects = (fn: () => unknown, pattern: RegExp): void => {
  assert.throws(fn, (err) => {
    assert.ok(err instanceof FailedPreconditionError, String(err));
    assert.match(err.message, pattern);
    return true;
  });
};

describe('parseManifest', () => {
  it('parses an OCI image manifest, dispatching on the Content-Type (parameters ignored)', () => {
    const m = parseManifest(json(ociManifest), `${OCI_MANIFEST}; charset=utf-8`);
    assert.equal(m.kind, 'image');
    assert.equal(m.mediaType, OCI_MANIFEST);
    assert.deepEqual(m.config, { mediaType: OCI_CONFIG, digest: d(1), size: 100 });
    assert.deepEqual(
      m.layers.map((l) => l.digest),
      [d(2), d(3)],
    );
    assert.deepEqual(m.layers[1]?.annotations, { a: 'b' });
  });

  it('parses a Docker schema2 manifest and manifest list', () => {
    const docker = {
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: DOCKER_CONFIG, digest: d(1), size: 1 },
      layers: [{ mediaType: DOCKER_LAYER_GZIP, digest: d(2), size: 2 }],
    };
    assert.equal(parseManifest(json(docker), DOCKER_MANIFEST).kind, 'image');
    const list = {
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST_LIST,
      manifests: [
        {
          mediaType: DOCKER_MANIFEST,
          digest: d(5),
          size: 5,
          platform: { os: 'linux', architecture: 'amd64' },
        },
      ],
    };
    const parsed = parseManifest(json(list), DOCKER_MANIFEST_LIST);
    assert.equal(parsed.kind, 'index');
    assert.equal(parsed.mediaType, DOCKER_MANIFEST_LIST);
  });

  it('falls back to the JSON mediaType, then to the shape, when the Content-Type says nothing useful', () => {
    const index = { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] };
    assert.deepEqual(parseManifest(json(index), 'application/json'), {
      kind: 'index',
      mediaType: OCI_INDEX,
      manifests: [],
    });
    const { mediaType: _drop, ...bare } = ociManifest;
    assert.equal(parseManifest(json(bare), '').mediaType, OCI_MANIFEST);
    assert.equal(parseManifest(json({ schemaVersion: 2, manifests: [] }), 'text/plain').kind, 'index');
    const dockerBare = {
      schemaVersion: 2,
      config: { mediaType: DOCKER_CONFIG, digest: d(1), size: 1 },
      layers: [],
    };
    assert.equal(parseManifest(json(dockerBare), '').mediaType, DOCKER_MANIFEST);
  });

  it('refuses schema1 clearly, by Content-Type or by schemaVersion', () => {
    rejects(
      () =>
        parseManifest(
          json({ schemaVersion: 1, fsLayers: [] }),
          'application/vnd.docker.distribution.manifest.v1+prettyjws',
        ),
      /schema1 manifest, which crisp does not support/,
    );
    rejects(() => parseManifest(json({ schemaVersion: 1, fsLayers: [] }), 'application/json'), /schema1/);
  });

  it('refuses artifacts: a config that is not an image config', () => {
    const helm = {
      ...ociManifest,
      config: { mediaType: 'application/vnd.cncf.helm.config.v1+json', digest: d(1), size: 1 },
    };
    rejects(
      () => parseManifest(json(helm), OCI_MANIFEST),
      /OCI artifact \(config media type "application\/vnd\.cncf\.helm/,
    );
    const empty = {
      ...ociManifest,
      artifactType: 'application/vnd.example.sbom',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: d(1), size: 2 },
    };
    rejects(
      () => parseManifest(json(empty), OCI_MANIFEST),
      /artifact type "application\/vnd\.example\.sbom"/,
    );
    rejects(
      () => parseManifest(json({}), 'application/vnd.oci.artifact.manifest.v1+json'),
      /artifact manifest/,
    );
  });

  it('refuses layers it cannot unpack', () => {
    const odd = {
      ...ociManifest,
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+encrypted', digest: d(2), size: 1 }],
    };
    rejects(() => parseManifest(json(odd), OCI_MANIFEST), /layer 0 .* cannot unpack/);
  });

  it('names the digest in errors: broken JSON, wrong shapes, bad descriptors', () => {
    const broken = Buffer.from('{"schemaVersion": 2, ');
    rejects(
      () => parseManifest(broken, OCI_MANIFEST),
      new RegExp(`manifest ${computeDigest(broken)} is not valid JSON`),
    );
    rejects(
      () => parseManifest(broken, OCI_MANIFEST, { digest: d(9), image: 'r/x:1' }),
      new RegExp(`manifest ${d(9)} of r/x:1 is not valid JSON`),
    );
    rejects(() => parseManifest(json([1]), OCI_MANIFEST), /not a JSON object/);
    rejects(
      () => parseManifest(json({ schemaVersion: 2 }), 'application/json'),
      /not an image manifest or index/,
    );
    const badDigest = {
      ...ociManifest,
      layers: [{ mediaType: OCI_LAYER_GZIP, digest: 'sha256:XYZ', size: 1 }],
    };
    rejects(
      () => parseManifest(json(badDigest), OCI_MANIFEST),
      /layers\.0\.digest: invalid digest "sha256:XYZ"/,
    );
    const negative = { ...ociManifest, config: { ...ociManifest.config, size: -1 } };
    rejects(() => parseManifest(json(negative), OCI_MANIFEST), /config\.size/);
    rejects(() => parseManifest(json({ ...ociManifest, schemaVersion: 3 }), OCI_MANIFEST), /schemaVersion/);
  });

  it('refuses ambiguous documents (CVE-2021-41190)', () => {
    rejects(() => parseManifest(json({ ...ociManifest, manifests: [] }), OCI_MANIFEST), /ambiguous/);
    rejects(
      () => parseManifest(json({ schemaVersion: 2, manifests: [], layers: [] }), OCI_INDEX),
      /ambiguous/,
    );
    rejects(() => parseManifest(json({ ...ociManifest, mediaType: OCI_INDEX }), OCI_MANIFEST), /ambiguous/);
  });
});

describe('digests', () => {
  it('validates and computes', () => {
    assert.equal(digestProblem(d(1)), undefined);
    assert.match(digestProblem('sha256:abc') ?? '', /64 lowercase hex/);
    assert.match(digestProblem('nope') ?? '', /algorithm:encoded/);
    assert.equal(digestProblem('blake3:abcdef'), undefined);
    assert.equal(
      computeDigest(Buffer.from('')),
      'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
    );
    assert.match(computeDigest(Buffer.from(''), 'sha512'), /^sha512:[a-f0-9]{128}$/);
  });
});

describe('hostPlatform', () => {
  it('maps Node architectures to Go names', () => {
    assert.deepEqual(hostPlatform('x64'), { os: 'linux', architecture: 'amd64' });
    assert.deepEqual(hostPlatform('arm64'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
    assert.deepEqual(hostPlatform('arm', '6'), { os: 'linux', architecture: 'arm', variant: 'v6' });
    assert.deepEqual(hostPlatform('arm', undefined), { os: 'linux', architecture: 'arm', variant: 'v7' });
    assert.deepEqual(hostPlatform('ia32'), { os: 'linux', architecture: '386' });
    assert.deepEqual(hostPlatform('ppc64', undefined, 'LE'), { os: 'linux', architecture: 'ppc64le' });
    assert.deepEqual(hostPlatform('ppc64', undefined, 'BE'), { os: 'linux', architecture: 'ppc64' });
    assert.deepEqual(hostPlatform('s390x'), { os: 'linux', architecture: 's390x' });
    assert.deepEqual(hostPlatform('riscv64'), { os: 'linux', architecture: 'riscv64' });
    assert.equal(hostPlatform().os, 'linux');
  });
});

describe('selectPlatform', () => {
  let n = 100;
  const entry = (platform?: Descriptor['platform'], extra: Partial<Descriptor> = {}): Descriptor => ({
    mediaType: OCI_MANIFEST,
    digest: d(n++),
    size: 1,
    ...(platform ? { platform } : {}),
    ...extra,
  });
  const index = (...manifests: Descriptor[]): ParsedIndex => ({
    kind: 'index',
    mediaType: OCI_INDEX,
    manifests,
  });
  const amd64 = { os: 'linux', architecture: 'amd64' };

  it('picks os and architecture, skipping attestations and other operating systems', () => {
    const attestation = entry(
      { os: 'unknown', architecture: 'unknown' },
      { annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
    );
    const win = entry({ os: 'windows', architecture: 'amd64' });
    const arm = entry({ os: 'linux', architecture: 'arm64' });
    const want = entry({ os: 'linux', architecture: 'amd64' });
    assert.equal(selectPlatform(index(attestation, win, arm, want), amd64), want);
  });

  it('prefers the exact variant, then an entry without one, then older ARM variants', () => {
    const v6 = entry({ os: 'linux', architecture: 'arm', variant: 'v6' });
    const bare = entry({ os: 'linux', architecture: 'arm' });
    const v7 = entry({ os: 'linux', architecture: 'arm', variant: 'v7' });
    const v8 = entry({ os: 'linux', architecture: 'arm', variant: 'v8' });
    const host = { os: 'linux', architecture: 'arm', variant: 'v7' };
    assert.equal(selectPlatform(index(v6, bare, v8, v7), host), v7);
    assert.equal(selectPlatform(index(v6, v8, bare), host), bare);
    assert.equal(selectPlatform(index(v8, v6), host), v6);
    assert.throws(() => selectPlatform(index(v8), host), NotFoundError);
  });

  it('treats arm64/v8 and arm64 alike, and aarch64 as arm64', () => {
    const v8 = entry({ os: 'linux', architecture: 'arm64', variant: 'v8' });
    const bare = entry({ os: 'linux', architecture: 'aarch64' });
    assert.equal(selectPlatform(index(v8), { os: 'linux', architecture: 'arm64', variant: 'v8' }), v8);
    assert.equal(selectPlatform(index(bare), { os: 'linux', architecture: 'arm64', variant: 'v8' }), bare);
    assert.equal(selectPlatform(index(v8), { os: 'linux', architecture: 'arm64' }), v8);
  });

  it('uses an entry without a platform only as a last resort, and skips artifacts', () => {
    const none = entry();
    const sbom = entry(undefined, { artifactType: 'application/spdx+json' });
    const want = entry(amd64);
    assert.equal(selectPlatform(index(none, want), amd64), want);
    assert.equal(selectPlatform(index(sbom, none), amd64), none);
  });

  it('says what the index has when nothing matches', () => {
    const idx = index(
      entry({ os: 'linux', architecture: 'arm64' }),
      entry({ os: 'linux', architecture: 'arm', variant: 'v7' }),
      entry({ os: 'unknown', architecture: 'unknown' }),
    );
    assert.throws(
      () => selectPlatform(idx, amd64, 'r/x:1'),
      (err) => {
        assert.ok(err instanceof NotFoundError);
        assert.equal(
          err.message,
          'platform "linux/amd64" not found: the image index of r/x:1 has only linux/arm64, linux/arm/v7; use an image built for linux/amd64',
        );
        return true;
      },
    );
    assert.throws(() => selectPlatform(index(), amd64), /lists no runnable manifest/);
  });
});

describe('parseImageConfig', () => {
  const rootfs = { type: 'layers', diff_ids: [d(7), d(8)] };

  it('reads the run config, rootfs and history', () => {
    const cfg = parseImageConfig(
      json({
        architecture: 'amd64',
        os: 'linux',
        created: '2024-01-02T03:04:05Z',
        config: {
          User: '1000:1000',
          Env: ['PATH=/usr/bin', 'A=b'],
          Entrypoint: ['/bin/sh', '-c'],
          Cmd: ['echo hi'],
          WorkingDir: '/app',
          StopSignal: 'SIGINT',
          ExposedPorts: { '80/tcp': {}, '53/udp': {} },
          Volumes: { '/data': {} },
          Labels: { a: 'b', n: 1 },
        },
        rootfs,
        history: [{ created_by: 'ADD' }, { empty_layer: true }, { created_by: 'RUN' }, { empty_layer: true }],
      }),
    );
    assert.deepEqual(cfg, {
      diffIds: [d(7), d(8)],
      run: {
        user: '1000:1000',
        env: ['PATH=/usr/bin', 'A=b'],
        entrypoint: ['/bin/sh', '-c'],
        cmd: ['echo hi'],
        workingDir: '/app',
        stopSignal: 'SIGINT',
        volumes: ['/data'],
        exposedPorts: ['80/tcp', '53/udp'],
        labels: { a: 'b' },
      },
      os: 'linux',
      architecture: 'amd64',
      created: '2024-01-02T03:04:05Z',
      historyEmptyLayers: 2,
    });
  });

  it('tolerates null and absent fields, and a string Cmd', () => {
    const empty = {
      user: '',
      env: [],
      entrypoint: [],
      cmd: [],
      workingDir: '',
      stopSignal: '',
      volumes: [],
      exposedPorts: [],
      labels: {},
    };
    const a = parseImageConfig(
      json({ rootfs: { type: 'layers', diff_ids: [] }, config: null, history: null }),
    );
    assert.deepEqual(a.run, empty);
    assert.equal(a.os, '');
    assert.equal(a.created, undefined);
    const b = parseImageConfig(
      json({
        os: 'linux',
        architecture: 'arm',
        variant: 'v7',
        rootfs: { type: 'layers' },
        config: {
          Env: null,
          Cmd: 'sh',
          Entrypoint: null,
          Labels: null,
          Volumes: null,
          ExposedPorts: null,
          User: null,
        },
      }),
    );
    assert.deepEqual(b.run, { ...empty, cmd: ['sh'] });
    assert.deepEqual(b.diffIds, []);
    assert.equal(b.variant, 'v7');
  });

  it('refuses a rootfs that is not layers, a missing rootfs and broken JSON', () => {
    rejects(() => parseImageConfig(json({ rootfs: { type: 'zfs', diff_ids: [] } })), /rootfs\.type "zfs"/);
    rejects(() => parseImageConfig(json({ config: {} })), /not a valid image config \(rootfs/);
    rejects(
      () => parseImageConfig(json({ rootfs: { type: 'layers', diff_ids: ['x'] } })),
      /rootfs\.diff_ids\.0/,
    );
    rejects(
      () => parseImageConfig(Buffer.from('nope')),
      /image config sha256:[a-f0-9]{64} is not valid JSON/,
    );
  });
});
