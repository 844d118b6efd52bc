/**
 * Every on-disk location crisp uses, derived from root_dir (persistent, survives reboots) and run_dir
 * (volatile, expected on tmpfs). No other module builds these paths itself.
 */
import { posix } from 'node:path';
export function derivePaths(config) {
    const root = (name) => posix.join(config.root_dir, name);
    const run = (name) => posix.join(config.run_dir, name);
    return Object.freeze({
        stateDb: root('state'),
        containersDir: root('containers'),
        blobsDir: root('blobs'),
        layersDir: root('layers'),
        bundlesDir: run('bundles'),
        exitsDir: run('exits'),
        attachDir: run('attach'),
        netnsDir: run('netns'),
        pidFile: run('crisp.pid'),
    });
}
//# sourceMappingURL=paths.js.map