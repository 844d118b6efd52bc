/**
 * Brings a layer into the layer store exactly once, however many pulls or imports want it at
 * the same time: if its unpacked form is already there nothing is fetched; otherwise the blob
 * is downloaded into the content store (digest-checked), unpacked (diff-id-checked), and the
 * compressed blob is dropped — the unpacked layer is what containers use, and keeping both
 * would double the disk an image takes. Work for one diff-id in flight is shared: the later
 * callers wait for the first one's result.
 */
import type { Readable } from 'node:stream';
import type { ContentStore } from './content-store.js';
import type { LayerStore } from './layer-store.js';

export interface LayerWanted {
  digest: string;
  diffId: string;
  mediaType: string;
  size: number;
}

export interface LayerSource {
  ensure(
    layer: LayerWanted,
    open: () => Promise<Readable>,
    onBytes: (n: number) => void,
    signal?: AbortSignal,
  ): Promise<void>;
}

export class LayerCache implements LayerSource {
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(
    private readonly content: ContentStore,
    private readonly layers: LayerStore,
  ) {}

  ensure(
    layer: LayerWanted,
    open: () => Promise<Readable>,
    onBytes: (n: number) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    const running = this.inflight.get(layer.diffId);
    if (running) return running;
    const work = this.fetchAndUnpack(layer, open, onBytes, signal).finally(() => {
      this.inflight.delete(layer.diffId);
    });
    this.inflight.set(layer.diffId, work);
    return work;
  }

  private async fetchAndUnpack(
    layer: LayerWanted,
    open: () => Promise<Readable>,
    onBytes: (n: number) => void,
    signal?: AbortSignal,
  ): Promise<void> {
    if (await this.layers.has(layer.diffId)) return;
    await this.content.ingest(layer.digest, layer.size, open, onBytes);
    try {
      await this.layers.unpack(layer.diffId, this.content.path(layer.digest), layer.mediaType, signal);
    } finally {
      await this.content.delete(layer.digest);
    }
  }
}
