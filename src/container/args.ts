/**
 * The container process's argv and environment, from the CRI request and the image config,
 * exactly as Kubernetes and containerd define them (notes/oci-image.md §6).
 */
import { InvalidArgumentError } from '../errors.js';
import type { ImageRunConfig } from '../image/types.js';
import type { EnvVar } from './spec-types.js';

/** The PATH containerd's base spec carries, used when neither the image nor the request sets one. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/**
 * The process argv:
 * - `command` empty → the image Entrypoint (unless it is `[""]`, Docker's way of clearing it),
 *   followed by `args` if given, else the image Cmd;
 * - `command` set → `command` + `args` (the image's Entrypoint and Cmd are ignored).
 * Nothing at all → InvalidArgumentError on `config.command`.
 */
export function resolveArgs(
  command: readonly string[],
  args: readonly string[],
  image: Pick<ImageRunConfig, 'entrypoint' | 'cmd'>,
): string[] {
  let head: readonly string[] = command;
  let tail: readonly string[] = args;
  if (command.length === 0) {
    if (args.length === 0) tail = image.cmd;
    const cleared = image.entrypoint.length === 1 && image.entrypoint[0] === '';
    head = cleared ? [] : image.entrypoint;
  }
  const argv = [...head, ...tail];
  if (argv.length === 0) {
    throw new InvalidArgumentError(
      'config.command',
      'no command specified: the image has no entrypoint or cmd and the container config gives none',
    );
  }
  return argv;
}

/**
 * The process environment, in containerd's order: a default PATH, then `HOSTNAME=<hostname>`
 * (skipped when `hostname` is ''), then the image Env, then the CRI envs. A later value for a
 * name replaces the earlier one in place; an image entry without `=` unsets the name (containerd's
 * rule). A CRI env with an empty name is an InvalidArgumentError (runc refuses it).
 */
export function mergeEnv(imageEnv: readonly string[], criEnvs: readonly EnvVar[], hostname = ''): string[] {
  const env = new Map<string, string>([['PATH', DEFAULT_PATH]]);
  if (hostname !== '') env.set('HOSTNAME', hostname);
  for (const entry of imageEnv) {
    const eq = entry.indexOf('=');
    if (eq < 0) env.delete(entry);
    else if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  criEnvs.forEach(({ key, value }, i) => {
    // runc refuses a variable without a name. A key holding "=" makes `key=value` a variable
    // named by what comes before the first "=", as containerd reads it.
    const eq = key.indexOf('=');
    if (key === '' || eq === 0) {
      throw new InvalidArgumentError(
        `config.envs[${i}].key`,
        `${JSON.stringify(key)} gives the variable no name, and runc refuses a variable without one`,
      );
    }
    if (eq > 0) env.set(key.slice(0, eq), `${key.slice(eq + 1)}=${value}`);
    else env.set(key, value);
  });
  return [...env].map(([k, v]) => `${k}=${v}`);
}
