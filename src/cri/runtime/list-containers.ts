/** ListContainers (and StreamContainers): application containers from memory, filtered. */
import type { ListContainersRequest__Output } from '../../generated/runtime/v1/ListContainersRequest.js';
import type { ListContainersResponse } from '../../generated/runtime/v1/ListContainersResponse.js';
import type { StreamContainersRequest__Output } from '../../generated/runtime/v1/StreamContainersRequest.js';
import type { StreamContainersResponse } from '../../generated/runtime/v1/StreamContainersResponse.js';
import type { ContainerManager } from '../../container/manager.js';
import { containerMatches, toContainer } from '../convert/container.js';
import { checkFilter } from '../checks.js';
import type { StreamImpl, UnaryImpl } from '../handler.js';

const PAGE = 500;

export function listContainers(
  containers: ContainerManager,
): UnaryImpl<ListContainersRequest__Output, ListContainersResponse> {
  return (req) => {
    checkFilter(req.filter);
    return Promise.resolve({
      containers: containers
        .list()
        .filter((c) => containerMatches(c, req.filter))
        .map(toContainer),
    });
  };
}

export function streamContainers(
  containers: ContainerManager,
): StreamImpl<StreamContainersRequest__Output, StreamContainersResponse> {
  return (req, send) => {
    checkFilter(req.filter);
    const all = containers
      .list()
      .filter((c) => containerMatches(c, req.filter))
      .map(toContainer);
    for (let i = 0; i < all.length || i === 0; i += PAGE) send({ containers: all.slice(i, i + PAGE) });
    return Promise.resolve();
  };
}
