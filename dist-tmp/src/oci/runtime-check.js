/**
 * Is the OCI runtime usable? The binaries crisp drives (conmon and each configured runtime)
 * must exist and be executable; the answer becomes the RuntimeReady condition.
 */
import { access, constants } from 'node:fs/promises';
/** `binaries` maps a role ("conmon", "runtime runc") to the configured path. */
export async function checkRuntimeBinaries(binaries) {
    const problems = [];
    await Promise.all(Object.entries(binaries).map(async ([role, path]) => {
        try {
            await access(path, constants.X_OK);
        }
        catch (err) {
            const why = err.code === 'ENOENT' ? 'not found' : 'not executable';
            problems.push(`${role} ${path} is ${why}`);
        }
    }));
    if (problems.length === 0)
        return { ready: true, reason: '', message: '' };
    problems.sort();
    return {
        ready: false,
        reason: 'RuntimeBinaryMissing',
        message: `${problems.join('; ')}: install it (make deps) or fix the path in crisp.toml`,
    };
}
//# sourceMappingURL=runtime-check.js.map