/** ImageStatus: one image by id, tag or digest; an absent image is an empty answer, not an error. */
import type { ImageStatusRequest__Output } from '../../generated/runtime/v1/ImageStatusRequest.js';
import type { ImageStatusResponse } from '../../generated/runtime/v1/ImageStatusResponse.js';
import type { ImageService } from '../../image/service.js';
import { imageVerboseInfo, toCriImage } from '../convert/image.js';
import type { UnaryImpl } from '../handler.js';
import { checkImageSpec } from '../checks.js';

export function imageStatus(
  images: ImageService,
): UnaryImpl<ImageStatusRequest__Output, ImageStatusResponse> {
  return async (req) => {
    const spec = checkImageSpec(req.image, 'image', { lookup: true });
    const found = await images.resolve(spec);
    if (!found) return { image: null, info: {} };
    return {
      image: toCriImage(found),
      info: req.verbose ? imageVerboseInfo(found, images.layerDirs(found)) : {},
    };
  };
}
