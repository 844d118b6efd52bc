/** Whether the node runs AppArmor (the kernel module is loaded and enabled). */
import { readFile } from 'node:fs/promises';

export async function apparmorEnabled(path = '/sys/module/apparmor/parameters/enabled'): Promise<boolean> {
  try {
    return (await readFile(path, 'utf8')).trim() === 'Y';
  } catch {
    return false;
  }
}
