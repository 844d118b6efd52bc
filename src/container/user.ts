/**
 * The container process's uid, gid and supplementary groups (notes/oci-runtime-spec-for-cri.md §1):
 *   1. run_as_username, looked up in the container's /etc/passwd;
 *   2. run_as_user (with run_as_group);
 *   3. the image's User (`uid`, `uid:gid`, `name`, `name:group`, mixed forms too);
 *   4. otherwise 0:0.
 * run_as_group applies on top of 1 or 2 (containerd's `user:group` string). additionalGids are the
 * primary gid (as containerd has done since CVE-2023-25173), the groups listing the user in the
 * rootfs's /etc/group (only with supplemental_groups_policy Merge, the default), then
 * supplemental_groups.
 *
 * The resolution itself is pure (`resolveUserFrom`); `resolveUser` reads the two files from the
 * mounted rootfs, following symlinks only inside it (an image's /etc/passwd may be a symlink to
 * an absolute path, which must not reach the host's files).
 */
import { constants } from 'node:fs';
import { lstat, open, readlink } from 'node:fs/promises';
import path from 'node:path';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import type { ImageRunConfig } from '../image/types.js';
import type { ContainerSecurityInput, ProcessUser } from './spec-types.js';

/** One /etc/passwd line: `name:password:uid:gid:gecos:home:shell`. */
export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}

/** One /etc/group line: `name:password:gid:member,member`. */
export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/**
 * CRI SupplementalGroupsPolicy (KEP-3619). merge (the default): the groups the image's
 * /etc/group gives the user, plus supplemental_groups; strict: only the primary gid and
 * supplemental_groups, so an image cannot add groups the pod spec does not name.
 */
export type SupplementalGroupsPolicy = 'merge' | 'strict';

/**
 * The security-context fields that choose the user. `supplementalGroupsPolicy` belongs in
 * spec-types.ts's ContainerSecurityInput; until it is there, the CRI layer sets it on the same
 * object (see cri/runtime/create-container.ts).
 */
export type UserRequest = Pick<
  ContainerSecurityInput,
  'runAsUser' | 'runAsGroup' | 'runAsUsername' | 'supplementalGroups'
> & { supplementalGroupsPolicy?: SupplementalGroupsPolicy };

/** The image, as far as the user goes: its User and, for messages, its name. */
export interface UserImage {
  ref: string;
  run: Pick<ImageRunConfig, 'user'>;
}

/** Largest id the kernel accepts ((uid_t)-1 means "no change"). */
const MAX_ID = 0xfffffffe;
/** Larger passwd/group files are refused rather than read into memory. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;
const MAX_SYMLINKS = 40;

function parseId(text: string): number | undefined {
  if (!/^\d{1,10}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= MAX_ID ? n : undefined;
}

function lines(text: string): string[][] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#') && !/^[+-]/.test(line))
    .map((line) => line.split(':'));
}

/** Parses /etc/passwd, skipping comments, NIS `+`/`-` lines and malformed lines. */
export function parsePasswd(text: string): PasswdEntry[] {
  const entries: PasswdEntry[] = [];
  for (const [name, , uidText, gidText] of lines(text)) {
    const uid = parseId(uidText ?? '');
    const gid = parseId(gidText ?? '');
    if (name && uid !== undefined && gid !== undefined) entries.push({ name, uid, gid });
  }
  return entries;
}

/** Parses /etc/group, skipping comments, NIS `+`/`-` lines and malformed lines. */
export function parseGroup(text: string): GroupEntry[] {
  const entries: GroupEntry[] = [];
  for (const [name, , gidText, memberText] of lines(text)) {
    const gid = parseId(gidText ?? '');
    if (!name || gid === undefined) continue;
    const members = (memberText ?? '')
      .split(',')
      .map((m) => m.trim())
      .filter((m) => m !== '');
    entries.push({ name, gid, members });
  }
  return entries;
}

const SC = 'config.linux.security_context';

function checkId(field: string, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_ID) {
    throw new InvalidArgumentError(field, `${value} is not a valid id (0..${MAX_ID})`);
  }
  return value;
}

/** Where the user string came from, for error messages. */
type UserSource = 'request' | 'image';

/**
 * The user string containerd builds from the security context (`user[:group]`), or undefined when
 * the request names no user. run_as_username wins over run_as_user.
 */
export function requestedUser(request: UserRequest): string | undefined {
  let user: string | undefined;
  if (request.runAsUser !== undefined) user = String(checkId(`${SC}.run_as_user`, request.runAsUser));
  if (request.runAsUsername !== undefined && request.runAsUsername !== '') user = request.runAsUsername;
  const group =
    request.runAsGroup === undefined ? undefined : String(checkId(`${SC}.run_as_group`, request.runAsGroup));
  if (user === undefined) {
    if (group !== undefined) {
      throw new InvalidArgumentError(
        `${SC}.run_as_group`,
        'run_as_group is set without run_as_user or run_as_username',
      );
    }
    return undefined;
  }
  if (user.includes(':')) {
    throw new InvalidArgumentError(`${SC}.run_as_username`, `${JSON.stringify(user)} contains ':'`);
  }
  return group === undefined ? user : `${user}:${group}`;
}

/**
 * Resolves the user from parsed passwd/group contents (undefined = the file does not exist).
 * Names missing from the files are a FailedPreconditionError naming the user and the image.
 */
export function resolveUserFrom(
  files: { passwd: readonly PasswdEntry[] | undefined; group: readonly GroupEntry[] | undefined },
  request: UserRequest,
  image: UserImage,
): ProcessUser {
  const passwd = files.passwd ?? [];
  const groups = files.group ?? [];
  const fromRequest = requestedUser(request);
  const source: UserSource = fromRequest === undefined ? 'image' : 'request';
  const spec = fromRequest ?? image.run.user;
  const origin = source === 'request' ? 'the container security context' : "the image's User";

  const colon = spec.indexOf(':');
  const userPart = colon < 0 ? spec : spec.slice(0, colon);
  const groupPart = colon < 0 ? undefined : spec.slice(colon + 1);

  let uid = 0;
  let gid = 0;
  let name: string | undefined;
  const numericUid = parseId(userPart === '' ? '0' : userPart);
  if (numericUid !== undefined) {
    uid = numericUid;
    const entry = passwd.find((e) => e.uid === uid);
    if (entry) {
      name = entry.name;
      gid = entry.gid;
    }
  } else {
    const entry = passwd.find((e) => e.name === userPart);
    if (!entry) {
      throw new FailedPreconditionError(
        `user ${JSON.stringify(userPart)} (from ${origin}) not found in /etc/passwd of image ${JSON.stringify(image.ref)}`,
        { details: { user: userPart, image: image.ref, source } },
      );
    }
    ({ name, uid, gid } = entry);
  }

  if (groupPart !== undefined && groupPart !== '') {
    const numericGid = parseId(groupPart);
    if (numericGid !== undefined) {
      gid = numericGid;
    } else {
      const entry = groups.find((g) => g.name === groupPart);
      if (!entry) {
        throw new FailedPreconditionError(
          `group ${JSON.stringify(groupPart)} (from ${origin}) not found in /etc/group of image ${JSON.stringify(image.ref)}`,
          { details: { group: groupPart, image: image.ref, source } },
        );
      }
      gid = entry.gid;
    }
  }

  const additional = new Set<number>([gid]);
  if (name !== undefined && request.supplementalGroupsPolicy !== 'strict') {
    const member = name;
    for (const g of groups) if (g.members.includes(member)) additional.add(g.gid);
  }
  (request.supplementalGroups ?? []).forEach((g, i) => {
    additional.add(checkId(`${SC}.supplemental_groups[${i}]`, g));
  });
  return { uid, gid, additionalGids: [...additional] };
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return err instanceof Error && 'code' in err && codes.includes(String(err.code));
}

/**
 * `rel` (an absolute path inside the container) as a host path under `root`, with every symlink
 * resolved as if `root` were `/`: `..` and absolute targets cannot climb out of it. A missing
 * component ends the walk (opening the result then fails with ENOENT).
 */
export async function resolveInRoot(root: string, rel: string): Promise<string> {
  const pending = rel.split('/').filter((p) => p !== '' && p !== '.');
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() ?? '';
    if (part === '..') {
      done.pop();
      continue;
    }
    const candidate = path.join(root, ...done, part);
    let isLink: boolean;
    try {
      isLink = (await lstat(candidate)).isSymbolicLink();
    } catch (err) {
      if (!isErrno(err, 'ENOENT', 'ENOTDIR')) throw err;
      return path.join(root, ...done, part, ...pending);
    }
    if (!isLink) {
      done.push(part);
      continue;
    }
    if (++links > MAX_SYMLINKS) {
      throw new FailedPreconditionError(`too many levels of symbolic links resolving ${rel} in ${root}`);
    }
    const target = await readlink(candidate);
    if (target.startsWith('/')) done.length = 0;
    pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
  }
  return path.join(root, ...done);
}

/** Reads a small regular file of the rootfs; undefined if it does not exist. */
async function readRootfsFile(root: string, rel: string, imageRef: string): Promise<string | undefined> {
  try {
    const hostPath = await resolveInRoot(root, rel);
    // O_NOFOLLOW: the path was just resolved, so a symlink now means it changed under us;
    // O_NONBLOCK: a FIFO must not hang the daemon (it is refused below).
    const handle = await open(hostPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new Error('not a regular file');
      if (st.size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
      return await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined;
    throw new FailedPreconditionError(`cannot read ${rel} of image ${JSON.stringify(imageRef)}`, {
      cause: err,
      details: { rootfs: root },
    });
  }
}

/**
 * Resolves the process user against the container's mounted rootfs (`rootfsPath`): reads its
 * /etc/passwd and /etc/group (either may be absent) and applies `resolveUserFrom`.
 */
export async function resolveUser(
  rootfsPath: string,
  request: UserRequest,
  image: UserImage,
): Promise<ProcessUser> {
  const [passwdText, groupText] = await Promise.all([
    readRootfsFile(rootfsPath, '/etc/passwd', image.ref),
    readRootfsFile(rootfsPath, '/etc/group', image.ref),
  ]);
  return resolveUserFrom(
    {
      passwd: passwdText === undefined ? undefined : parsePasswd(passwdText),
      group: groupText === undefined ? undefined : parseGroup(groupText),
    },
    request,
    image,
  );
}
