/**
 * ContainerStatus: NOT_FOUND for unknown ids; verbose adds pid, bundle, the config and whether the
 * start-up recovery has checked the container yet.
 */
import type { ContainerStatusRequest__Output } from '../../generated/runtime/v1/ContainerStatusRequest.js';
import type { ContainerStatusResponse } from '../../generated/runtime/v1/ContainerStatusResponse.js';
import type { ContainerManager, StoredContainer } from '../../container/manager.js';
import { NotFoundError } from '../../errors.js';
import { containerVerboseInfo, toContainerStatus } from '../convert/container.js';
import type { UnaryImpl } from '../handler.js';
import { requireId } from '../limits.js';

/**
 * The application container `id` (an id or unique prefix) with its state just read from the
 * runtime; NOT_FOUND for an unknown id or a pod's infra container, which CRI does not show.
 */
export async function refreshedAppContainer(
  containers: ContainerManager,
  id: string,
): Promise<StoredContainer> {
  const found = containers.find(id);
  if (found?.config.kind !== 'app') throw new NotFoundError('container', id);
  await containers.refresh(found.config.id);
  return containers.get(found.config.id);
}

export function containerStatus(
  containers: ContainerManager,
): UnaryImpl<ContainerStatusRequest__Output, ContainerStatusResponse> {
  return async (req) => {
    const c = await refreshedAppContainer(containers, requireId(req.container_id, 'container_id'));
    return {
      status: toContainerStatus(c),
      info: req.verbose
        ? containerVerboseInfo(c, containers.bundleDir(c.config.id), containers.isUnchecked(c.config.id))
        : {},
    };
  };
}
