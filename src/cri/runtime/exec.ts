/** Exec: validate the request and hand out a single-use streaming URL for it. */
import type { ExecRequest__Output } from '../../generated/runtime/v1/ExecRequest.js';
import type { ExecResponse } from '../../generated/runtime/v1/ExecResponse.js';
import type { StreamingServer } from '../../streaming/server.js';
import type { UnaryImpl } from '../handler.js';
import { checkCmd } from '../checks.js';
import { requireId } from '../limits.js';

export function exec(streaming: StreamingServer): UnaryImpl<ExecRequest__Output, ExecResponse> {
  return async (req) => {
    checkCmd(req.cmd);
    const url = await streaming.execUrl({
      containerId: requireId(req.container_id, 'container_id'),
      cmd: req.cmd,
      tty: req.tty,
      stdin: req.stdin,
      stdout: req.stdout,
      stderr: req.stderr,
    });
    return { url };
  };
}
