/**
 * A container's log file must stay inside its pod's log directory. The path itself is joined
 * lexically (no absolute paths, no ".."); this checks what is already on disk along it, since
 * conmon opens the file with O_CREAT and follows symlinks: a symlinked directory or file under
 * the pod's log directory that points elsewhere (`<logdir>/c -> /etc`) would have conmon write
 * outside. Symlinks whose target stays inside the log directory are allowed; anything else, a
 * dangling link, or a component of the wrong kind (a file where a directory must be, a FIFO
 * where the log goes) is INVALID_ARGUMENT naming config.log_path. Missing components are fine:
 * crisp creates them as plain directories.
 *
 * What the node's root (kubelet) does to the log directory between this check and conmon's open
 * is out of reach; the check is against mistakes and against a pod that can write to the log
 * directory through a hostPath volume, not against root.
 */
import type { Stats } from 'node:fs';
import { lstat, realpath, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { errnoCode } from '../util/errno.js';

const FIELD = 'config.log_path';

function inside(root: string, path: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);
}

/**
 * Checks `logPath` (absolute, already joined under `logDirectory` without "..") against the
 * filesystem. Resolves when nothing on the way leads out of the log directory.
 */
export async function checkLogPathContained(logDirectory: string, logPath: string): Promise<void> {
  if (logPath === '') return;
  const rel = relative(logDirectory, logPath);
  if (rel === '' || rel.startsWith('..') || rel.startsWith(sep)) {
    throw new InvalidArgumentError(FIELD, `"${logPath}" is not inside the pod's log_directory`);
  }
  let root: string;
  try {
    root = await realpath(logDirectory);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return; // made fresh by crisp, below nobody's symlinks
    throw new InvalidArgumentError(FIELD, `cannot resolve the pod's log_directory ${logDirectory}`, {
      cause: err,
    });
  }
  const parts = rel.split(sep);
  let current = logDirectory;
  for (const [i, part] of parts.entries()) {
    current = join(current, part);
    const last = i === parts.length - 1;
    let st: Stats;
    try {
      st = await lstat(current);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw new InvalidArgumentError(FIELD, `cannot check ${current} (${errnoCode(err) ?? String(err)})`, {
        cause: err,
      });
    }
    if (st.isSymbolicLink()) {
      let target: string;
      try {
        target = await realpath(current);
      } catch {
        throw new InvalidArgumentError(
          FIELD,
          `${current} is a symlink that leads nowhere; refusing to let the log file be created through it`,
        );
      }
      if (!inside(root, target)) {
        throw new InvalidArgumentError(
          FIELD,
          `${current} is a symlink to ${target}, outside the pod's log_directory ${logDirectory}`,
        );
      }
      st = await stat(target);
    }
    if (!last && !st.isDirectory()) {
      throw new InvalidArgumentError(FIELD, `${current} is not a directory`);
    }
    if (last && !st.isFile()) {
      throw new InvalidArgumentError(FIELD, `${current} exists and is not a regular file`);
    }
  }
}
