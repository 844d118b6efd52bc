/**
 * Durable file helpers for state that must survive a crash or power cut: a file's bytes are
 * fsynced before it is renamed into place, and the directory is fsynced after the rename.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/** fsync a directory, so a create, rename or unlink in it survives a power cut. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Creates `file` (it must not exist) with `text`, fsynced before returning. */
export async function writeNewFileSynced(file: string, text: string, mode = 0o644): Promise<void> {
  const handle = await fs.open(file, 'wx', mode);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Replaces `file` with `text` atomically and durably: a temp file beside it (fsynced), renamed over
 * it, then the directory fsynced. A crash leaves the old file or the new one, never a torn one;
 * a leftover `.tmp-*` file is garbage (the orphan reconciler removes old ones).
 */
export async function writeFileAtomic(file: string, text: string, mode = 0o644): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.tmp-${path.basename(file)}-${randomBytes(4).toString('hex')}`);
  try {
    await writeNewFileSynced(temp, text, mode);
    await fs.rename(temp, file);
  } catch (err) {
    await fs.rm(temp, { force: true });
    throw err;
  }
  await fsyncDir(dir);
}
