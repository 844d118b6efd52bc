/** ContainerStatus: NOT_FOUND for unknown ids; verbose adds pid, bundle and the config. */
import type { ContainerStatusRequest__Output } from '../../generated/runtime/v1/ContainerStatusRequest.js';
import type { ContainerStatusResponse } from '../../generated/runtime/v1/ContainerStatusResponse.js';
import type { ContainerManager } from '../../container/manager.js';
import { NotFoundError } from '../../errors.js';
import { containerVerboseInfo, toContainerStatus } from '../convert/container.js';
import type { UnaryImpl } from '../handler.js';
import { requireString } from '../validate.js';

export function containerStatus(
  containers: ContainerManager,
): UnaryImpl<ContainerStatusRequest__Output, ContainerStatusResponse> {
  return async (req) => {
    const id = requireString(req.container_id, 'container_id');
    const found = containers.find(id);
    if (found?.config.kind !== 'app') throw new NotFoundError('container', id);
    await containers.refresh(found.config.id);
    const c = containers.get(found.config.id);
    return {
      status: toContainerStatus(c),
      info: req.verbose ? containerVerboseInfo(c, containers.bundleDir(c.config.id)) : {},
    };
  };
}
