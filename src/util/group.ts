/**
 * Looks up a group by name or number in /etc/group (read asynchronously; Node has no getgrnam).
 * Used once at start for the CRI socket's group (crisp.toml `socket_group`).
 */
import { readFile } from 'node:fs/promises';
import { errnoCode } from './errno.js';

/** The largest gid Linux accepts (2^32 - 2; -1 means "unchanged" to chown). */
const MAX_GID = 4_294_967_294;

/** Parses /etc/group text into name → gid (malformed lines are skipped). */
export function parseGroupFile(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const [name, , gid] = line.split(':');
    if (name === undefined || name === '' || gid === undefined || !/^\d+$/.test(gid)) continue;
    if (!out.has(name)) out.set(name, Number(gid));
  }
  return out;
}

/**
 * The gid of `group` — a decimal number is taken as a gid as it is (it need not have a name),
 * anything else is a name looked up in `groupFile`. Undefined when there is no such group.
 */
export async function resolveGroup(group: string, groupFile = '/etc/group'): Promise<number | undefined> {
  if (/^\d+$/.test(group)) {
    const gid = Number(group);
    return gid <= MAX_GID ? gid : undefined;
  }
  let text: string;
  try {
    text = await readFile(groupFile, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw err;
  }
  return parseGroupFile(text).get(group);
}
