import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LockHeldError, acquireInstanceLock } from './instance-lock.js';
describe('instance lock', () => {
    it('refuses a second holder and frees the name on release', async () => {
        const key = `test:${process.pid}:${Date.now()}`;
        const lock = await acquireInstanceLock('thing one', key);
        await assert.rejects(acquireInstanceLock('thing one', key), (err) => {
            assert.ok(err instanceof LockHeldError);
            assert.match(err.message, /thing one is locked/);
            return true;
        });
        await lock.release();
        const again = await acquireInstanceLock('thing one', key);
        await again.release();
    });
    it('is released by the kernel when the holder is killed', async () => {
        const key = `test-kill:${process.pid}:${Date.now()}`;
        const moduleUrl = new URL('./instance-lock.js', import.meta.url).href;
        const script = `import(${JSON.stringify(moduleUrl)}).then(async (m) => { await m.acquireInstanceLock('x', ${JSON.stringify(key)}); process.stdout.write('held\\n'); setInterval(() => {}, 1000); });`;
        const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
            cwd: fileURLToPath(new URL('.', import.meta.url)),
            stdio: ['ignore', 'pipe', 'inherit'],
        });
        await once(child.stdout, 'data');
        await assert.rejects(acquireInstanceLock('x', key), LockHeldError);
        child.kill('SIGKILL');
        await once(child, 'exit');
        const lock = await acquireInstanceLock('x', key);
        await lock.release();
    });
});
//# sourceMappingURL=instance-lock.test.js.map