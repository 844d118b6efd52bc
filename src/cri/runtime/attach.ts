/** Attach: validate the request and hand out a single-use streaming URL for it. */
import type { AttachRequest__Output } from '../../generated/runtime/v1/AttachRequest.js';
import type { AttachResponse } from '../../generated/runtime/v1/AttachResponse.js';
import type { StreamingServer } from '../../streaming/server.js';
import type { UnaryImpl } from '../handler.js';
import { requireId } from '../limits.js';

export function attach(streaming: StreamingServer): UnaryImpl<AttachRequest__Output, AttachResponse> {
  return async (req) => {
    const url = await streaming.attachUrl({
      containerId: requireId(req.container_id, 'container_id'),
      tty: req.tty,
      stdin: req.stdin,
      stdout: req.stdout,
      stderr: req.stderr,
    });
    return { url };
  };
}
