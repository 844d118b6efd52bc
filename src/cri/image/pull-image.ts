/** PullImage: fetch into the store; answers the image id as image_ref. */
import type { PullImageRequest__Output } from '../../generated/runtime/v1/PullImageRequest.js';
import type { PullImageResponse } from '../../generated/runtime/v1/PullImageResponse.js';
import type { ImageService } from '../../image/service.js';
import { toAuthConfigInput } from '../convert/image.js';
import type { UnaryImpl } from '../handler.js';
import { requireMessage, requireString } from '../validate.js';

export function pullImage(images: ImageService): UnaryImpl<PullImageRequest__Output, PullImageResponse> {
  return async (req, scope) => {
    const spec = requireString(requireMessage(req.image, 'image').image, 'image.image');
    const id = await images.pull(spec, toAuthConfigInput(req.auth), scope.signal);
    return { image_ref: id };
  };
}
