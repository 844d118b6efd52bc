/** AppArmor on the node: whether it runs, and which profiles are loaded. */
import { readFile } from 'node:fs/promises';
import { FailedPreconditionError } from '../errors.js';
import { errnoCode } from '../util/errno.js';

/** Whether the node runs AppArmor (the kernel module is loaded and enabled). */
export async function apparmorEnabled(path = '/sys/module/apparmor/parameters/enabled'): Promise<boolean> {
  try {
    return (await readFile(path, 'utf8')).trim() === 'Y';
  } catch {
    return false;
  }
}

/** The securityfs list of loaded profiles: one `<name> (<mode>)` line each. */
export const APPARMOR_PROFILES = '/sys/kernel/security/apparmor/profiles';

/** The list is a few KiB on a busy node; more than this is not a profile list. */
const PROFILES_MAX_BYTES = 4 * 1024 * 1024;

/**
 * Refuses (FAILED_PRECONDITION) a profile that is not loaded, as containerd does at create:
 * runc would fail only at start, leaving a created container that can never run.
 */
export async function requireAppArmorProfileLoaded(
  name: string,
  field: string,
  path = APPARMOR_PROFILES,
): Promise<void> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new FailedPreconditionError(
      `AppArmor profile "${name}" (${field}): cannot read the loaded profiles from ${path} (${errnoCode(err) ?? String(err)})`,
      { cause: err },
    );
  }
  const loaded = text
    .slice(0, PROFILES_MAX_BYTES)
    .split('\n')
    .some((line) => line.replace(/ \([^()]*\)$/, '') === name);
  if (!loaded) {
    throw new FailedPreconditionError(
      `AppArmor profile "${name}" (${field}) is not loaded on this node: load it (apparmor_parser -r <file>) before creating the container`,
      { details: { profile: name } },
    );
  }
}
