/** Exec: validate the request and hand out a single-use streaming URL for it. */
import type { ExecRequest__Output } from '../../generated/runtime/v1/ExecRequest.js';
import type { ExecResponse } from '../../generated/runtime/v1/ExecResponse.js';
import type { StreamingServer } from '../../streaming/server.js';
import type { UnaryImpl } from '../handler.js';
import { requireString } from '../validate.js';

export function exec(streaming: StreamingServer): UnaryImpl<ExecRequest__Output, ExecResponse> {
  return async (req) => {
    const url = await streaming.execUrl({
      containerId: requireString(req.container_id, 'container_id'),
      cmd: req.cmd,
      tty: req.tty,
      stdin: req.stdin,
      stdout: req.stdout,
      stderr: req.stderr,
    });
    return { url };
  };
}
