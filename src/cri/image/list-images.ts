/** ListImages: every image, or the one the filter names. */
import type { ListImagesRequest__Output } from '../../generated/runtime/v1/ListImagesRequest.js';
import type { ListImagesResponse } from '../../generated/runtime/v1/ListImagesResponse.js';
import type { StreamImagesRequest__Output } from '../../generated/runtime/v1/StreamImagesRequest.js';
import type { StreamImagesResponse } from '../../generated/runtime/v1/StreamImagesResponse.js';
import type { ImageService } from '../../image/service.js';
import { toCriImage } from '../convert/image.js';
import type { StreamImpl, UnaryImpl } from '../handler.js';
import { LIMITS, checkText } from '../limits.js';

export function listImages(images: ImageService): UnaryImpl<ListImagesRequest__Output, ListImagesResponse> {
  return async (req) => {
    const wanted = checkText(req.filter?.image?.image ?? '', 'filter.image.image', LIMITS.imageRefBytes);
    if (wanted === '') return { images: images.list().map(toCriImage) };
    const found = await images.resolve(wanted);
    return { images: found ? [toCriImage(found)] : [] };
  };
}

/** StreamImages: the same list, sent in pages so a huge store never builds one giant message. */
export const STREAM_PAGE_SIZE = 500;

export function streamImages(
  images: ImageService,
): StreamImpl<StreamImagesRequest__Output, StreamImagesResponse> {
  const list = listImages(images);
  return async (req, send, scope) => {
    const { images: all = [] } = await list(req, scope);
    for (let i = 0; i < all.length || i === 0; i += STREAM_PAGE_SIZE) {
      send({ images: all.slice(i, i + STREAM_PAGE_SIZE) });
    }
  };
}
