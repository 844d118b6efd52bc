/**
 * Is pod networking configured? NetworkReady is true once the CNI config directory holds a
 * network configuration (.conflist, .conf or .json), as kubelet expects of every runtime.
 */
import { readdir } from 'node:fs/promises';

const CONFIG_SUFFIXES = ['.conflist', '.conf', '.json'];

export interface NetworkConfigCheck {
  ready: boolean;
  reason: string;
  message: string;
  /** The file CNI would use (lexically first), when there is one. */
  file?: string;
}

export async function checkCniConfigDir(dir: string): Promise<NetworkConfigCheck> {
  let names: string[] = [];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const configs = names.filter((n) => CONFIG_SUFFIXES.some((s) => n.endsWith(s))).sort();
  const first = configs[0];
  if (first === undefined) {
    return {
      ready: false,
      reason: 'NetworkPluginNotReady',
      message: `no CNI network configuration in ${dir}: add a .conflist file there (see docs/config.md)`,
    };
  }
  return { ready: true, reason: '', message: '', file: `${dir}/${first}` };
}
