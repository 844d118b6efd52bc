/** ExecSync: run a command in a running container; output, exit code; timeout honoured. */
import type { ExecSyncRequest__Output } from '../../generated/runtime/v1/ExecSyncRequest.js';
import type { ExecSyncResponse } from '../../generated/runtime/v1/ExecSyncResponse.js';
import type { ContainerManager } from '../../container/manager.js';
import type { UnaryImpl } from '../handler.js';
import { checkCmd } from '../checks.js';
import { requireId, timeoutSeconds } from '../limits.js';

export function execSync(containers: ContainerManager): UnaryImpl<ExecSyncRequest__Output, ExecSyncResponse> {
  return async (req, scope) => {
    const id = requireId(req.container_id, 'container_id');
    checkCmd(req.cmd);
    // 0 (or negative): no timeout.
    const timeout = timeoutSeconds(req.timeout);
    const res = await containers.execSync(id, req.cmd, timeout, scope.signal);
    return { stdout: res.stdout, stderr: res.stderr, exit_code: res.exitCode };
  };
}
