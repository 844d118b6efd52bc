/**
 * Is pod networking configured? NetworkReady is true once the CNI config directory holds a
 * network configuration (.conflist, .conf or .json), as kubelet expects of every runtime.
 */
import { readdir } from 'node:fs/promises';
const CONFIG_SUFFIXES = ['.conflist', '.conf', '.json'];
export async function checkCniConfigDir(dir) {
    let names = [];
    try {
        names = await readdir(dir);
    }
    catch (err) {
        if (err.code !== 'ENOENT')
            throw err;
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
//# sourceMappingURL=cni-config-check.js.map