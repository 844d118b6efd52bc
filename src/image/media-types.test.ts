import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DOCKER_FOREIGN_LAYER_GZIP,
  DOCKER_LAYER,
  DOCKER_LAYER_GZIP,
  DOCKER_MANIFEST,
  DOCKER_MANIFEST_LIST,
  DOCKER_SCHEMA1_MANIFEST,
  DOCKER_SCHEMA1_SIGNED_MANIFEST,
  MANIFEST_ACCEPT,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_LAYER_GZIP,
  OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
  OCI_LAYER_ZSTD,
  OCI_MANIFEST,
  isImageConfigMediaType,
  isIndexMediaType,
  isNondistributableLayer,
  layerCompression,
  normalizeMediaType,
} from './media-types.js';

describe('media types', () => {
  it('accepts OCI and Docker manifests and indexes, and schema1 so it can be refused clearly', () => {
    const accepted = MANIFEST_ACCEPT.split(', ');
    for (const t of [
      OCI_MANIFEST,
      OCI_INDEX,
      DOCKER_MANIFEST,
      DOCKER_MANIFEST_LIST,
      DOCKER_SCHEMA1_MANIFEST,
      DOCKER_SCHEMA1_SIGNED_MANIFEST,
    ]) {
      assert.ok(accepted.includes(t), t);
    }
    assert.equal(accepted[0], OCI_MANIFEST);
  });

  it('normalises a Content-Type', () => {
    assert.equal(normalizeMediaType(' Application/VND.OCI.image.index.v1+json ; charset=utf-8'), OCI_INDEX);
    assert.equal(normalizeMediaType(null), '');
    assert.equal(normalizeMediaType(undefined), '');
  });

  it('classifies layers, configs and indexes', () => {
    assert.equal(layerCompression(OCI_LAYER_GZIP), 'gzip');
    assert.equal(layerCompression(OCI_LAYER_ZSTD), 'zstd');
    assert.equal(layerCompression(DOCKER_LAYER), 'none');
    assert.equal(layerCompression(DOCKER_LAYER_GZIP), 'gzip');
    assert.equal(layerCompression('application/vnd.cncf.helm.chart.content.v1.tar+gzip'), undefined);
    assert.ok(isNondistributableLayer(OCI_LAYER_NONDISTRIBUTABLE_ZSTD));
    assert.ok(isNondistributableLayer(DOCKER_FOREIGN_LAYER_GZIP));
    assert.ok(!isNondistributableLayer(OCI_LAYER_GZIP));
    assert.ok(isImageConfigMediaType(OCI_CONFIG));
    assert.ok(!isImageConfigMediaType('application/vnd.oci.empty.v1+json'));
    assert.ok(isIndexMediaType(DOCKER_MANIFEST_LIST));
    assert.ok(!isIndexMediaType(OCI_MANIFEST));
  });
});
