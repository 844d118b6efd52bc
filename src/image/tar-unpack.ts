/**
 * Unpacks one image layer (an uncompressed tar stream) into an empty directory, in the form
 * overlayfs expects of a lower directory (docs/layers.md, notes/overlay-layers.md):
 * - OCI whiteouts become overlay whiteouts. `.wh.<name>` becomes a 0/0 character device
 *   `<name>`, and `.wh..wh..opq` becomes the xattr `trusted.overlay.opaque=y` on its directory.
 * - Every other entry is written as it is: files, directories, symlinks, hard links, device
 *   nodes and fifos, with owner, mode (setuid/setgid/sticky included), xattrs and times.
 *
 * Tar semantics (Go archive/tar and containerd's applier):
 * - A later entry replaces an earlier one at the same path, except that a directory over a
 *   directory is merged and only its metadata is applied.
 * - A missing parent directory is created 0755 root:root.
 * - Per entry the order is create → lchown → xattrs → chmod → times. chmod comes after chown
 *   because chown clears setuid/setgid and file capabilities.
 * - Directory times are applied in a second pass at the end, because adding children changes
 *   them.
 *
 * Safety: the archive is untrusted.
 * - Every name is normalised lexically.
 * - These are refused with a FailedPreconditionError that names the entry: absolute names,
 *   names that climb out with `..`, names containing NUL, any entry or hard-link target whose
 *   parent path runs through a symlink this archive planted, and hard links to anything that
 *   is not already in this layer.
 * - FailedPrecondition, not InvalidArgument: the request that led here (a pull) is well
 *   formed; the image it names cannot be used on this node. InvalidArgumentError is also
 *   shaped for request fields (`invalid <field>: …`).
 * - This code is the only writer of the directory, so checking with lstat and then creating is
 *   race-free. The final component is never followed: regular files are opened with
 *   O_CREAT|O_EXCL|O_NOFOLLOW after any old entry has been removed, and only l* calls and
 *   `setfattr -h` are used on paths.
 * On error the directory is left partly written; the caller deletes it.
 *
 * Node can neither mknod nor set xattrs, so device nodes, fifos and whiteouts go through the
 * `mknod` binary, and xattrs through `setfattr` (Debian `attr`), both via runCommand.
 * tar-stream loses binary PAX values (it decodes them as UTF-8), so the raw xattr bytes come
 * from TarPaxTap (tar-pax-tap.ts).
 */
import { constants as fsConstants, type Stats } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract as tarExtract, type Header } from 'tar-stream';
import {
  CanceledError,
  CommandError,
  CrispError,
  FailedPreconditionError,
  InternalError,
  ResourceExhaustedError,
} from '../errors.js';
import type { Logger } from '../log/logger.js';
import { CommandFailure, runCommand, type DebugLog } from '../util/command.js';
import { TarPaxTap } from './tar-pax-tap.js';

export interface TarUnpackOptions {
  /** Names the archive in messages and logs, e.g. `layer sha256:…`. */
  label: string;
  signal?: AbortSignal;
  log?: Logger;
}

export interface TarUnpackStats {
  /** Entries written: files, directories, links, device nodes, fifos and whiteouts. */
  files: number;
  /** Bytes of regular-file content written. */
  bytes: number;
  /** Xattrs in the archive that were not applied (refused by the kernel, or reserved for overlayfs). */
  xattrsSkipped: number;
}

const WHITEOUT_PREFIX = '.wh.';
const WHITEOUT_META_PREFIX = '.wh..wh.';
const OPAQUE_MARKER = '.wh..wh..opq';
const OPAQUE_XATTR = 'trusted.overlay.opaque';
const SCHILY_XATTR = 'SCHILY.xattr.';
/** Go's time.Time limit; later times (and times before the epoch) become the epoch, as in containerd. */
const MAX_TIME_SECONDS = 9_223_372_036;

/**
 * Unpacks the tar stream `tar` into `root`, an existing empty directory. Errors from `tar`
 * itself (e.g. a decompressor in front of it) are rethrown unchanged so the caller can name
 * them. Everything else is a CrispError.
 */
export async function unpackTar(
  tar: Readable,
  root: string,
  opts: TarUnpackOptions,
): Promise<TarUnpackStats> {
  const abs = path.resolve(root);
  if ((await fs.readdir(abs)).length > 0) {
    throw new InternalError(`${opts.label}: unpacking needs an empty directory, and ${abs} is not`);
  }
  return new TarUnpacker(abs, opts).run(tar);
}

interface Meta {
  uid: number;
  gid: number;
  /** Permission bits incl. setuid/setgid/sticky. */
  mode: number;
  /** Seconds since the epoch. */
  atime: number;
  mtime: number;
}

type XattrTarget = 'file' | 'dir' | 'other';

class TarUnpacker {
  readonly #root: string;
  readonly #label: string;
  readonly #signal: AbortSignal | undefined;
  readonly #log: Logger | undefined;
  readonly #debug: DebugLog | undefined;
  readonly #stats: TarUnpackStats = { files: 0, bytes: 0, xattrsSkipped: 0 };
  /** Relative paths known to be real directories (not symlinks); '' is the root. */
  readonly #dirs = new Set<string>(['']);
  /**
   * Relative paths of the non-directories this unpack created. The root starts empty, so a
   * path in neither set cannot exist yet and needs no lstat before it is created.
   */
  readonly #created = new Set<string>();
  /** Directory times to apply after the last entry. */
  readonly #dirTimes = new Map<string, { atime: number; mtime: number }>();

  constructor(root: string, opts: TarUnpackOptions) {
    this.#root = root;
    this.#label = opts.label;
    this.#signal = opts.signal;
    this.#log = opts.log;
    const log = opts.log;
    this.#debug = log
      ? (fields, msg) => {
          log.debug(fields, msg);
        }
      : undefined;
  }

  async run(source: Readable): Promise<TarUnpackStats> {
    this.#checkAbort();
    const tap = new TarPaxTap();
    const extractor = tarExtract();
    let origin: 'source' | 'archive' | undefined;
    source.once('error', () => {
      origin ??= 'source';
    });
    extractor.once('error', () => {
      origin ??= 'archive';
    });
    extractor.on('entry', (header, body, next) => {
      this.#entry(header, body, tap).then(
        () => {
          next();
        },
        (err: unknown) => {
          next(err instanceof Error ? err : new InternalError(`${this.#label}: ${String(err)}`));
        },
      );
    });
    try {
      await pipeline(source, tap, extractor);
    } catch (err) {
      if (err instanceof CrispError) throw err;
      if (origin === 'source') throw err;
      throw new FailedPreconditionError(`${this.#label} is not a valid tar archive: ${messageOf(err)}`, {
        cause: err,
      });
    }
    for (const [rel, times] of this.#dirTimes) {
      try {
        await fs.lutimes(this.#abs(rel), times.atime, times.mtime);
      } catch (err) {
        throw this.#wrap(rel, err);
      }
    }
    if (this.#stats.xattrsSkipped > 0) {
      this.#log?.warn(
        { layer: this.#label, skipped: this.#stats.xattrsSkipped },
        'some xattrs were not applied',
      );
    }
    return { ...this.#stats };
  }

  async #entry(header: Header, body: AsyncIterable<unknown>, tap: TarPaxTap): Promise<void> {
    this.#checkAbort();
    const name = header.name;
    const pax = paxOf(header);
    const xattrs = this.#xattrsOf(name, pax, tap.xattrsAt(byteOffsetOf(header)));
    const rel = this.#normalise(name, name, 'entry');
    if (rel === '') {
      // The layer root itself ("./") is ignored, as containerd does.
      await drain(body);
      return;
    }
    const meta = metaOf(header, pax);
    const base = path.posix.basename(rel);
    try {
      if (base.startsWith(WHITEOUT_PREFIX)) {
        await drain(body);
        await this.#whiteout(name, rel, base, meta);
        return;
      }
      // tar-stream's types promise a known type; at run time it is null for typeflags it does
      // not know (GNU sparse 'S', volume labels, ...), which a layer must not contain.
      const type = header.type as Header['type'] | null;
      switch (type) {
        case 'file':
        case 'contiguous-file':
          await this.#file(name, rel, body, meta, xattrs);
          return;
        case 'directory':
          await this.#directory(name, rel, meta, xattrs);
          break;
        case 'symlink':
          await this.#symlink(name, rel, stringOr(header.linkname), meta, xattrs);
          break;
        case 'link':
          await this.#hardlink(name, rel, stringOr(header.linkname), meta, xattrs);
          break;
        case 'character-device':
        case 'block-device':
        case 'fifo':
          await this.#node(name, rel, type, header, meta, xattrs);
          break;
        case null:
        default:
          throw new FailedPreconditionError(
            `${this.#label} entry ${q(name)} has an unsupported tar entry type`,
            {
              details: { layer: this.#label, entry: name },
            },
          );
      }
      await drain(body);
    } catch (err) {
      throw this.#wrap(name, err);
    }
  }

  // --- entry kinds -------------------------------------------------------------------------

  async #file(
    name: string,
    rel: string,
    body: AsyncIterable<unknown>,
    meta: Meta,
    xattrs: Map<string, Buffer>,
  ): Promise<void> {
    await this.#prepare(name, rel, false);
    const abs = this.#abs(rel);
    const flags = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;
    const handle = await fs.open(abs, flags, 0o600);
    this.#created.add(rel);
    try {
      for await (const chunk of body) {
        this.#checkAbort();
        const buf = toBuffer(chunk);
        await writeAll(handle, buf);
        this.#stats.bytes += buf.length;
      }
      if (xattrs.size === 0) {
        // chmod must follow chown (chown clears setuid bits); utimes is independent of both.
        await Promise.all([
          handle.chown(meta.uid, meta.gid).then(() => handle.chmod(meta.mode)),
          handle.utimes(meta.atime, meta.mtime),
        ]);
      } else {
        await handle.chown(meta.uid, meta.gid);
        await this.#setXattrs(name, abs, xattrs, 'file');
        await handle.chmod(meta.mode);
        await handle.utimes(meta.atime, meta.mtime);
      }
    } finally {
      await handle.close();
    }
    this.#stats.files++;
  }

  async #directory(name: string, rel: string, meta: Meta, xattrs: Map<string, Buffer>): Promise<void> {
    const merge = await this.#prepare(name, rel, true);
    const abs = this.#abs(rel);
    if (!merge) await fs.mkdir(abs, { mode: 0o700 });
    this.#dirs.add(rel);
    await fs.lchown(abs, meta.uid, meta.gid);
    await this.#setXattrs(name, abs, xattrs, 'dir');
    await fs.chmod(abs, meta.mode);
    this.#dirTimes.set(rel, { atime: meta.atime, mtime: meta.mtime });
    this.#stats.files++;
  }

  async #symlink(
    name: string,
    rel: string,
    target: string,
    meta: Meta,
    xattrs: Map<string, Buffer>,
  ): Promise<void> {
    // The target is stored verbatim and may be absolute or dangling: it is only ever resolved
    // inside the container's root. Only this unpacker must never follow it.
    if (target === '' || target.includes('\0')) {
      throw this.#refuse(
        name,
        `is a symbolic link with ${target === '' ? 'an empty target' : 'a NUL byte in its target'}`,
      );
    }
    await this.#prepare(name, rel, false);
    const abs = this.#abs(rel);
    await fs.symlink(target, abs);
    this.#created.add(rel);
    if (xattrs.size === 0) {
      // chown does not touch mtime, so the two can run together (saves a thread-pool round trip).
      await Promise.all([fs.lchown(abs, meta.uid, meta.gid), fs.lutimes(abs, meta.atime, meta.mtime)]);
    } else {
      await fs.lchown(abs, meta.uid, meta.gid);
      await this.#setXattrs(name, abs, xattrs, 'other');
      await fs.lutimes(abs, meta.atime, meta.mtime);
    }
    this.#stats.files++;
  }

  async #hardlink(
    name: string,
    rel: string,
    link: string,
    meta: Meta,
    xattrs: Map<string, Buffer>,
  ): Promise<void> {
    const targetRel = this.#normalise(link, name, 'hard link');
    if (targetRel === rel) return; // a link to itself: nothing to do
    if (targetRel === '') throw this.#refuse(name, `is a hard link to the layer directory itself`);
    await this.#prepare(name, rel, false);
    // The target must already be in this layer, reached without crossing a symlink.
    const target = await this.#existingTarget(name, link, targetRel);
    if (target.isDirectory()) throw this.#refuse(name, `is a hard link to ${q(link)}, which is a directory`);
    const abs = this.#abs(rel);
    await fs.link(this.#abs(targetRel), abs);
    this.#created.add(rel);
    await fs.lchown(abs, meta.uid, meta.gid);
    await this.#setXattrs(name, abs, xattrs, target.isFile() ? 'file' : 'other');
    if (!target.isSymbolicLink()) await fs.chmod(abs, meta.mode);
    await fs.lutimes(abs, meta.atime, meta.mtime);
    this.#stats.files++;
  }

  async #node(
    name: string,
    rel: string,
    type: 'character-device' | 'block-device' | 'fifo',
    header: Header,
    meta: Meta,
    xattrs: Map<string, Buffer>,
  ): Promise<void> {
    const major = header.devmajor;
    const minor = header.devminor;
    if (!isId(major) || !isId(minor))
      throw this.#refuse(name, `has an invalid device number ${major}:${minor}`);
    await this.#prepare(name, rel, false);
    const abs = this.#abs(rel);
    const args =
      type === 'fifo'
        ? [abs, 'p']
        : [abs, type === 'character-device' ? 'c' : 'b', String(major), String(minor)];
    await this.#run(name, 'mknod', ['-m', '0600', '--', ...args]);
    this.#created.add(rel);
    await fs.lchown(abs, meta.uid, meta.gid);
    await this.#setXattrs(name, abs, xattrs, 'other');
    await fs.chmod(abs, meta.mode);
    await fs.lutimes(abs, meta.atime, meta.mtime);
    this.#stats.files++;
  }

  async #whiteout(name: string, rel: string, base: string, meta: Meta): Promise<void> {
    const parent = parentOf(rel);
    if (base === OPAQUE_MARKER) {
      // The directory hides all lower-layer children; this layer's own children stay visible,
      // so the marker may come before or after them.
      await this.#ensureDir(name, parent);
      await this.#run(name, 'setfattr', ['-h', '-n', OPAQUE_XATTR, '-v', 'y', '--', this.#abs(parent)]);
      return;
    }
    if (base.startsWith(WHITEOUT_META_PREFIX)) {
      // Other `.wh..wh.*` names are aufs bookkeeping (e.g. `.wh..wh.plnk`) with no meaning here.
      this.#log?.debug({ layer: this.#label, entry: name }, 'skipping aufs metadata entry');
      return;
    }
    const hidden = base.slice(WHITEOUT_PREFIX.length);
    if (hidden === '' || hidden === '.' || hidden === '..') {
      throw this.#refuse(name, 'is not a valid whiteout (it names no file)');
    }
    const target = parent === '' ? hidden : `${parent}/${hidden}`;
    await this.#prepare(name, target, false);
    const abs = this.#abs(target);
    await this.#run(name, 'mknod', ['-m', '0000', '--', abs, 'c', '0', '0']);
    this.#created.add(target);
    await fs.lchown(abs, meta.uid, meta.gid);
    this.#stats.files++;
  }

  // --- paths -------------------------------------------------------------------------------

  /**
   * `p` normalised to a path relative to the root ('' for the root itself), or a refusal naming
   * `entry`. `role` says what `p` is, for the message.
   */
  #normalise(p: string, entry: string, role: 'entry' | 'hard link'): string {
    const what = role === 'entry' ? '' : `is a hard link to ${q(p)}, which `;
    if (p.includes('\0')) {
      throw this.#refuse(
        entry,
        role === 'entry' ? 'has a NUL byte in its name' : 'is a hard link to a name with a NUL byte',
      );
    }
    if (p.startsWith('/')) {
      throw this.#refuse(entry, `${what}is an absolute path; layer entries must be relative`);
    }
    const out: string[] = [];
    for (const part of p.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') {
        if (out.length === 0) throw this.#refuse(entry, `${what}escapes the layer directory`);
        out.pop();
      } else {
        out.push(part);
      }
    }
    return out.join('/');
  }

  /**
   * Makes `rel`'s parent exist as a real directory and removes whatever is at `rel`, unless
   * both it and the new entry are directories (then returns true: merge).
   */
  async #prepare(entry: string, rel: string, directory: boolean): Promise<boolean> {
    await this.#ensureDir(entry, parentOf(rel));
    if (!this.#dirs.has(rel) && !this.#created.has(rel)) return false;
    const abs = this.#abs(rel);
    const existing = await lstatOrUndefined(abs);
    if (!existing) return false;
    if (directory && existing.isDirectory()) return true;
    await fs.rm(abs, { recursive: true, force: true });
    this.#forget(rel);
    return false;
  }

  /** Creates the directory `rel` and its parents as needed; refuses a path through a symlink. */
  async #ensureDir(entry: string, rel: string): Promise<void> {
    if (this.#dirs.has(rel)) return;
    let prefix = '';
    for (const part of rel.split('/')) {
      prefix = prefix === '' ? part : `${prefix}/${part}`;
      if (this.#dirs.has(prefix)) continue;
      const abs = this.#abs(prefix);
      const st = await lstatOrUndefined(abs);
      if (!st) {
        await fs.mkdir(abs, { mode: 0o755 });
        await fs.chmod(abs, 0o755); // mkdir's mode is subject to the umask
      } else if (st.isSymbolicLink()) {
        throw this.#refuse(entry, `goes through the symbolic link ${q(prefix)}`);
      } else if (!st.isDirectory()) {
        throw this.#refuse(entry, `is below ${q(prefix)}, which is not a directory`);
      }
      this.#dirs.add(prefix);
    }
  }

  /** lstat of a hard link's target, which must exist in this layer without crossing a symlink. */
  async #existingTarget(entry: string, link: string, targetRel: string): Promise<Stats> {
    let prefix = '';
    const parts = targetRel.split('/');
    for (const [i, part] of parts.entries()) {
      prefix = prefix === '' ? part : `${prefix}/${part}`;
      const st = await lstatOrUndefined(this.#abs(prefix));
      if (!st) throw this.#refuse(entry, `is a hard link to ${q(link)}, which is not in the layer (yet)`);
      if (i === parts.length - 1) return st;
      if (st.isSymbolicLink()) {
        throw this.#refuse(
          entry,
          `is a hard link to ${q(link)}, which goes through the symbolic link ${q(prefix)}`,
        );
      }
      if (!st.isDirectory())
        throw this.#refuse(entry, `is a hard link to ${q(link)}, which is not in the layer`);
    }
    throw new InternalError(`${this.#label}: empty hard link target for ${q(entry)}`);
  }

  /** Drops what is known about `rel` and everything below it (it was just removed). */
  #forget(rel: string): void {
    const below = `${rel}/`;
    for (const c of this.#created) if (c === rel || c.startsWith(below)) this.#created.delete(c);
    for (const d of this.#dirs) if (d === rel || d.startsWith(below)) this.#dirs.delete(d);
    for (const d of this.#dirTimes.keys()) if (d === rel || d.startsWith(below)) this.#dirTimes.delete(d);
  }

  #abs(rel: string): string {
    return rel === '' ? this.#root : path.join(this.#root, rel);
  }

  // --- xattrs and commands -----------------------------------------------------------------

  /**
   * The entry's xattrs with their raw values. These come from the tap, checked against
   * tar-stream's view of the same PAX records.
   */
  #xattrsOf(
    name: string,
    pax: Record<string, string> | undefined,
    tapped: Map<string, Buffer> | undefined,
  ): Map<string, Buffer> {
    const raw = tapped ?? new Map<string, Buffer>();
    const keys = pax ? Object.keys(pax).filter((k) => k.startsWith(SCHILY_XATTR)) : [];
    const agree =
      keys.length === raw.size &&
      keys.every((k) => raw.get(k.slice(SCHILY_XATTR.length))?.toString('utf8') === pax?.[k]);
    if (!agree) {
      throw new InternalError(
        `${this.#label} entry ${q(name)}: the raw PAX xattr records do not match tar-stream's`,
        {
          details: { layer: this.#label, entry: name },
        },
      );
    }
    return raw;
  }

  /** Sets the xattrs; ones the kernel refuses (see below) are skipped and counted. */
  async #setXattrs(
    entry: string,
    abs: string,
    xattrs: Map<string, Buffer>,
    target: XattrTarget,
  ): Promise<void> {
    for (const [key, value] of xattrs) {
      if (key.startsWith('trusted.overlay.') || key.startsWith('user.overlay.')) {
        // Only the whiteout conversion may speak to overlayfs; an image that sets redirect or
        // metacopy xattrs itself could make overlayfs look outside the layer.
        this.#skipXattr(entry, key, 'reserved for overlayfs');
        continue;
      }
      if (key === '' || key.includes('\0')) throw this.#refuse(entry, `has an invalid xattr name ${q(key)}`);
      const args = ['-h', '-n', key];
      if (value.length > 0) args.push('-v', `0s${value.toString('base64')}`);
      args.push('--', abs);
      try {
        await runCommand('setfattr', args, { signal: this.#signal }, this.#debug);
      } catch (err) {
        if (err instanceof CommandFailure && err.reason === 'exit') {
          // The filesystem does not support the namespace (ENOTSUP), or the kernel refuses
          // user.* xattrs on symlinks, devices and fifos (EPERM); containerd ignores both.
          if (err.stderrTail.includes('Operation not supported')) {
            this.#skipXattr(entry, key, 'not supported by the filesystem');
            continue;
          }
          if (
            target === 'other' &&
            key.startsWith('user.') &&
            err.stderrTail.includes('Operation not permitted')
          ) {
            this.#skipXattr(entry, key, 'user.* xattrs are only allowed on files and directories');
            continue;
          }
          throw new FailedPreconditionError(
            `${this.#label} entry ${q(entry)}: cannot set xattr ${q(key)}: ${err.stderrTail}`,
            { cause: err, details: { layer: this.#label, entry } },
          );
        }
        throw this.#commandError(entry, err);
      }
    }
  }

  #skipXattr(entry: string, key: string, reason: string): void {
    this.#stats.xattrsSkipped++;
    this.#log?.debug({ layer: this.#label, entry, xattr: key, reason }, 'xattr not applied');
  }

  async #run(entry: string, file: string, args: string[]): Promise<void> {
    try {
      await runCommand(file, args, { signal: this.#signal }, this.#debug);
    } catch (err) {
      throw this.#commandError(entry, err);
    }
  }

  #commandError(entry: string, err: unknown): unknown {
    if (!(err instanceof CommandFailure)) return err;
    if (err.reason === 'aborted') return new CanceledError(`unpacking ${this.#label} was cancelled`);
    const tail = `${this.#label} entry ${q(entry)}: ${err.stderrTail || err.reason}`;
    return new CommandError(err.command, err.exitCode, tail, {
      cause: err,
      details: { layer: this.#label, entry },
    });
  }

  // --- errors ------------------------------------------------------------------------------

  #refuse(entry: string, what: string): FailedPreconditionError {
    return new FailedPreconditionError(`${this.#label} entry ${q(entry)} ${what}`, {
      details: { layer: this.#label, entry },
    });
  }

  #checkAbort(): void {
    if (this.#signal?.aborted) throw new CanceledError(`unpacking ${this.#label} was cancelled`);
  }

  /** Filesystem errors become CrispErrors naming the entry; stream errors pass through. */
  #wrap(entry: string, err: unknown): unknown {
    if (err instanceof CrispError || !isErrno(err)) return err;
    const text = `${this.#label} entry ${q(entry)}: ${err.syscall ?? 'filesystem'} failed: ${err.code ?? err.message}`;
    const options = { cause: err, details: { layer: this.#label, entry } };
    if (err.code === 'ENOSPC' || err.code === 'EDQUOT') return new ResourceExhaustedError(text, options);
    return new InternalError(text, options);
  }
}

// --- helpers -------------------------------------------------------------------------------

function q(s: string): string {
  return JSON.stringify(s);
}

function parentOf(rel: string): string {
  const dir = path.posix.dirname(rel);
  return dir === '.' ? '' : dir;
}

/** tar-stream puts the PAX records on `header.pax` (not in its published types). */
function paxOf(header: Header): Record<string, string> | undefined {
  const pax = header.pax;
  if (typeof pax !== 'object' || pax === null) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(pax)) if (typeof v === 'string') out[k] = v;
  return out;
}

/** The stream offset just past the header block (tar-stream's `byteOffset`, not in its types). */
function byteOffsetOf(header: Header): number {
  const offset: unknown = Reflect.get(header, 'byteOffset');
  return typeof offset === 'number' ? offset : -1;
}

function metaOf(header: Header, pax: Record<string, string> | undefined): Meta {
  // tar-stream does not apply PAX uid/gid/mtime/atime itself (only path, linkpath and size).
  const uid = paxId(pax?.uid) ?? header.uid;
  const gid = paxId(pax?.gid) ?? header.gid;
  const mtime = clampTime(paxTime(pax?.mtime) ?? header.mtime.getTime() / 1000);
  const atime = Math.max(clampTime(paxTime(pax?.atime) ?? mtime), mtime);
  return { uid, gid, mode: header.mode & 0o7777, atime, mtime };
}

function stringOr(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

function paxId(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d+$/.test(value)) return undefined;
  const n = Number(value);
  return isId(n) ? n : undefined;
}

function paxTime(value: string | undefined): number | undefined {
  if (value === undefined || !/^-?\d+(\.\d+)?$/.test(value)) return undefined;
  return Number(value);
}

function clampTime(seconds: number): number {
  return Number.isFinite(seconds) && seconds >= 0 && seconds <= MAX_TIME_SECONDS ? seconds : 0;
}

function isId(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0 && n <= 0xffffffff;
}

async function lstatOrUndefined(p: string): Promise<Stats | undefined> {
  try {
    return await fs.lstat(p);
  } catch (err) {
    if (isErrno(err) && err.code === 'ENOENT') return undefined;
    throw err;
  }
}

function isErrno(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && 'syscall' in err;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function toBuffer(chunk: unknown): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  throw new InternalError(`tar entry stream produced a ${typeof chunk}, not bytes`);
}

async function writeAll(handle: FileHandle, buf: Buffer): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await handle.write(buf, done, buf.length - done);
    done += bytesWritten;
  }
}

/** Reads an entry's data to the end; tar-stream stalls until each entry is consumed. */
async function drain(body: AsyncIterable<unknown>): Promise<void> {
  for await (const _chunk of body) {
    // discard
  }
}
