/**
 * Durable file helpers for state that must survive a crash or power cut: a file's bytes are
 * fsynced before it is renamed into place, and the directory is fsynced after the rename.
 */
import fs from 'node:fs/promises';

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
