/** ListPodSandbox (and StreamPodSandboxes): from memory, filtered. */
import type { ListPodSandboxRequest__Output } from '../../generated/runtime/v1/ListPodSandboxRequest.js';
import type { ListPodSandboxResponse } from '../../generated/runtime/v1/ListPodSandboxResponse.js';
import type { StreamPodSandboxesRequest__Output } from '../../generated/runtime/v1/StreamPodSandboxesRequest.js';
import type { StreamPodSandboxesResponse } from '../../generated/runtime/v1/StreamPodSandboxesResponse.js';
import type { SandboxManager } from '../../sandbox/manager.js';
import { sandboxMatches, toPodSandbox } from '../convert/sandbox.js';
import { checkFilter } from '../checks.js';
import type { StreamImpl, UnaryImpl } from '../handler.js';

const PAGE = 500;

export function listPodSandbox(
  sandboxes: SandboxManager,
): UnaryImpl<ListPodSandboxRequest__Output, ListPodSandboxResponse> {
  return (req) => {
    checkFilter(req.filter);
    return Promise.resolve({
      items: sandboxes
        .list()
        .filter((v) => sandboxMatches(v, req.filter))
        .map(toPodSandbox),
    });
  };
}

export function streamPodSandboxes(
  sandboxes: SandboxManager,
): StreamImpl<StreamPodSandboxesRequest__Output, StreamPodSandboxesResponse> {
  return (req, send) => {
    checkFilter(req.filter);
    const all = sandboxes
      .list()
      .filter((v) => sandboxMatches(v, req.filter))
      .map(toPodSandbox);
    for (let i = 0; i < all.length || i === 0; i += PAGE) send({ pod_sandboxes: all.slice(i, i + PAGE) });
    return Promise.resolve();
  };
}
