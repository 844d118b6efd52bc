/** ExecSync: run a command in a running container; output, exit code; timeout honoured. */
import type { ExecSyncRequest__Output } from '../../generated/runtime/v1/ExecSyncRequest.js';
import type { ExecSyncResponse } from '../../generated/runtime/v1/ExecSyncResponse.js';
import type { ContainerManager } from '../../container/manager.js';
import { InvalidArgumentError } from '../../errors.js';
import type { UnaryImpl } from '../handler.js';
import { requireString } from '../validate.js';

export function execSync(containers: ContainerManager): UnaryImpl<ExecSyncRequest__Output, ExecSyncResponse> {
  return async (req) => {
    const id = requireString(req.container_id, 'container_id');
    if (req.cmd.length === 0) throw new InvalidArgumentError('cmd', 'required, got an empty command');
    const timeout = Number(req.timeout);
    if (!Number.isSafeInteger(timeout) || timeout < 0) {
      throw new InvalidArgumentError(
        'timeout',
        `must be a non-negative number of seconds, got ${req.timeout}`,
      );
    }
    const res = await containers.execSync(id, req.cmd, timeout);
    return { stdout: res.stdout, stderr: res.stderr, exit_code: res.exitCode };
  };
}
