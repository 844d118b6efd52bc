/** RemoveImage: by id, tag or digest; idempotent. */
import type { RemoveImageRequest__Output } from '../../generated/runtime/v1/RemoveImageRequest.js';
import type { RemoveImageResponse } from '../../generated/runtime/v1/RemoveImageResponse.js';
import type { ImageService } from '../../image/service.js';
import type { UnaryImpl } from '../handler.js';
import { checkImageSpec } from '../checks.js';

export function removeImage(
  images: ImageService,
): UnaryImpl<RemoveImageRequest__Output, RemoveImageResponse> {
  return async (req) => {
    const spec = checkImageSpec(req.image, 'image', { lookup: true });
    await images.remove(spec);
    return {};
  };
}
