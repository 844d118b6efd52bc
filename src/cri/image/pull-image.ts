/** PullImage: fetch into the store; answers the image id as image_ref. */
import type { PullImageRequest__Output } from '../../generated/runtime/v1/PullImageRequest.js';
import type { PullImageResponse } from '../../generated/runtime/v1/PullImageResponse.js';
import type { ImageService } from '../../image/service.js';
import { toAuthConfigInput } from '../convert/image.js';
import type { UnaryImpl } from '../handler.js';
import { parseReference } from '../../image/reference.js';
import { checkAuth, checkImageSpec } from '../checks.js';

export function pullImage(images: ImageService): UnaryImpl<PullImageRequest__Output, PullImageResponse> {
  return async (req, scope) => {
    const spec = checkImageSpec(req.image, 'image');
    checkAuth(req.auth);
    // sandbox_config is a hint (kubelet sends the pod's, critest an empty one); crisp reads none of it.
    // Only a reference can be pulled (never an id); its grammar is the image engine's.
    parseReference(spec, 'image.image');
    const id = await images.pull(spec, toAuthConfigInput(req.auth), scope.signal);
    return { image_ref: id };
  };
}
