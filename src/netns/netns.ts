/**
 * Pinned network namespaces: one file per pod under `<run_dir>/netns`, each a bind mount of a
 * network namespace (nsfs). The namespace lives as long as the bind mount, independent of any
 * process, so it survives a restart of crisp and exists before the pause container starts.
 *
 * Node cannot call unshare(2)/setns(2) on a thread, so the work is done by host tools:
 *   - util-linux `mount --bind <dir> <dir>` + `mount --make-private <dir>` once (what `ip netns`
 *     does for /run/netns), so the per-namespace bind mounts never propagate to other mount
 *     namespaces (a container's rslave root would otherwise hold a copy and keep the namespace alive);
 *   - util-linux `unshare --net=<file> true`: unshares a new network namespace and bind-mounts
 *     /proc/<pid>/ns/net onto the (pre-created, empty) file;
 *   - util-linux `nsenter --net=<file>` + iproute2 `ip link set lo up` (a new namespace has lo DOWN);
 *   - util-linux `umount -l <file>` + unlink to remove (what containerd does with MNT_DETACH).
 * Every command is bounded by a timeout and runs through util/command.ts.
 *
 * Also passes on util/mountinfo.ts's parser to the sandbox layer (readMountInfo, topMountAt).
 */
import { mkdir, open, realpath, statfs, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { AlreadyExistsError, CommandError, InternalError, InvalidArgumentError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { CommandFailure, runCommand } from '../util/command.js';
import { readMountInfo as readHostMountInfo, type MountInfoEntry } from '../util/mountinfo.js';
import { errnoCode, readdirIfExists } from '../util/errno.js';

/** statfs(2) f_type of a namespace file (include/uapi/linux/magic.h NSFS_MAGIC). */
const NSFS_MAGIC = 0x6e736673;
/** Namespace names are crisp ids: lowercase hex, at most 64 characters. */
const NAME_RE = /^[0-9a-f]{1,64}$/;
const DEFAULT_TIMEOUT_MS = 10_000;
/** A path mounted more often than this is a bug, not something to keep unmounting. */
const MAX_STACKED_MOUNTS = 8;

/** The host binaries used; overridable for tests or unusual hosts. */
export interface NetnsTools {
  unshare: string;
  nsenter: string;
  ip: string;
  mount: string;
  umount: string;
}

export interface NetnsManagerOptions {
  log: Logger;
  /** Bound on each command. Default 10 s. */
  timeoutMs?: number;
  tools?: Partial<NetnsTools>;
}

export class NetnsManager {
  /** The namespace directory, absolute. Paths handed out are `<dir>/<name>`. */
  readonly dir: string;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #tools: NetnsTools;
  #ready: Promise<void> | undefined;

  constructor(dir: string /* <run_dir>/netns */, opts: NetnsManagerOptions) {
    this.dir = resolve(dir);
    this.#log = opts.log;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#tools = {
      unshare: 'unshare',
      nsenter: 'nsenter',
      ip: 'ip',
      mount: 'mount',
      umount: 'umount',
      ...opts.tools,
    };
  }

  /**
   * Creates the directory and makes it a private bind mount of itself unless it already is a
   * private mount point. Safe to call repeatedly and concurrently; create() calls it too.
   */
  init(): Promise<void> {
    this.#ready ??= this.#init().catch((err: unknown) => {
      this.#ready = undefined;
      throw err;
    });
    return this.#ready;
  }

  async #init(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o755 });
    } catch (err) {
      throw new InternalError(`cannot create the netns directory ${this.dir}`, { cause: err });
    }
    const real = await realpath(this.dir);
    const top = topMountAt(await readMountInfo(), real);
    if (top === undefined) {
      await this.#run('bind-mount the netns directory onto itself', this.#tools.mount, [
        '--bind',
        real,
        real,
      ]);
    }
    // A fresh bind inherits the parent's propagation (shared under systemd); an existing mount
    // may be shared or a slave. Either way, make it private.
    if (top === undefined || top.optional.length > 0) {
      await this.#run('make the netns directory a private mount', this.#tools.mount, [
        '--make-private',
        real,
      ]);
      this.#log.info({ dir: this.dir }, 'netns directory is a private mount');
    }
  }

  /** The path create(name) pins the namespace at (pure; validates the name). */
  pathFor(name: string): string {
    checkName(name);
    return join(this.dir, name);
  }

  /**
   * Creates a new network namespace with lo up, pinned at `<dir>/<name>`, and returns that path.
   * AlreadyExistsError if the file exists (remove it first). On failure every step taken so far
   * is undone and a CommandError names the step that failed.
   */
  async create(name: string): Promise<string> {
    return this.#pin(name, (path) =>
      this.#run(`pin network namespace ${name}`, this.#tools.unshare, [`--net=${path}`, 'true']),
    );
  }

  /**
   * Pins the network namespace process `pid` is in (e.g. one a user-namespaced pod's infra
   * container made inside its user namespace) as `<dir>/<name>`, with lo up: from then on it is
   * handled like one create() made.
   */
  async pinFrom(name: string, pid: number): Promise<string> {
    if (!Number.isSafeInteger(pid) || pid <= 0)
      throw new InvalidArgumentError('pid', `${pid} is not a process id`);
    return this.#pin(name, (path) =>
      this.#run(`pin network namespace ${name}`, this.#tools.mount, ['--bind', `/proc/${pid}/ns/net`, path]),
    );
  }

  /** Creates the empty file, binds a namespace on it (`bind`), brings lo up; undone on failure. */
  async #pin(name: string, bind: (path: string) => Promise<void>): Promise<string> {
    const path = this.pathFor(name);
    await this.init();
    try {
      const handle = await open(path, 'wx', 0o444);
      await handle.close();
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') {
        throw new AlreadyExistsError('network namespace', name, { hint: `${path} exists; remove it first` });
      }
      throw new InternalError(`cannot create the netns file ${path}`, { cause: err });
    }
    try {
      await bind(path);
      await this.#run(`bring up lo in network namespace ${name}`, this.#tools.nsenter, [
        `--net=${path}`,
        this.#tools.ip,
        'link',
        'set',
        'lo',
        'up',
      ]);
    } catch (err) {
      try {
        await this.remove(path);
      } catch (undoErr) {
        this.#log.warn({ netns: path, err: undoErr }, 'could not undo a failed netns creation');
      }
      throw err;
    }
    this.#log.debug({ netns: path }, 'network namespace created');
    return path;
  }

  /**
   * Unmounts (lazily, every stacked mount) and unlinks a namespace file. Idempotent: a file that
   * is no longer mounted, or is gone, is fine.
   */
  async remove(path: string): Promise<void> {
    this.#checkPath(path);
    for (let n = 0; await this.exists(path); n++) {
      if (n >= MAX_STACKED_MOUNTS) {
        throw new InternalError(`${path} is still mounted after ${MAX_STACKED_MOUNTS} unmounts`);
      }
      try {
        await this.#run(`unmount network namespace ${basename(path)}`, this.#tools.umount, ['-l', path]);
      } catch (err) {
        // Someone else unmounted it between the check and the umount: that is what we wanted.
        if (await this.exists(path)) throw err;
      }
    }
    try {
      await unlink(path);
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') {
        throw new InternalError(`cannot remove the netns file ${path}`, { cause: err });
      }
    }
    this.#log.debug({ netns: path }, 'network namespace removed');
  }

  /** Is `path` (a path this manager hands out) still a mounted namespace (nsfs) file? */
  async exists(path: string): Promise<boolean> {
    this.#checkPath(path);
    try {
      return (await statfs(path)).type === NSFS_MAGIC;
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return false;
      throw new InternalError(`cannot stat ${path}`, { cause: err });
    }
  }

  /**
   * The paths of every namespace file in the directory, sorted, mounted or not (a file left
   * unmounted by a crash is listed too, so a garbage collector can remove it).
   */
  async list(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdirIfExists(this.dir);
    } catch (err) {
      throw new InternalError(`cannot list ${this.dir}`, { cause: err });
    }
    return names
      .filter((n) => NAME_RE.test(n))
      .sort()
      .map((n) => join(this.dir, n));
  }

  /** Only `<dir>/<valid name>` is ever unmounted or unlinked. */
  #checkPath(path: string): void {
    const abs = resolve(path);
    if (dirname(abs) !== this.dir || !NAME_RE.test(basename(abs)) || abs !== path) {
      throw new InvalidArgumentError(
        'netns path',
        `${JSON.stringify(path)} is not a namespace file in ${this.dir}`,
      );
    }
  }

  async #run(step: string, file: string, args: readonly string[]): Promise<void> {
    try {
      await runCommand(file, args, { timeoutMs: this.#timeoutMs }, (fields, msg) => {
        this.#log.debug(fields, msg);
      });
    } catch (err) {
      throw toCommandError(step, err);
    }
  }
}

function checkName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new InvalidArgumentError(
      'netns name',
      `${JSON.stringify(name)} is not a crisp id (1-64 lowercase hex)`,
    );
  }
}

/** A CommandFailure becomes a CommandError whose stderr tail starts with the step. */
function toCommandError(step: string, err: unknown): unknown {
  if (!(err instanceof CommandFailure)) return err;
  const what =
    err.reason === 'exit' ? err.stderrTail : `${err.reason}${err.stderrTail ? `: ${err.stderrTail}` : ''}`;
  return new CommandError(err.command, err.exitCode, `${step}${what ? `: ${what}` : ''}`, {
    cause: err,
    details: { step, argv: err.argv, reason: err.reason },
  });
}

// --- /proc/self/mountinfo ----------------------------------------------------------------------

export { parseMountInfo, type MountInfoEntry } from '../util/mountinfo.js';

/** The calling process's mount table (asynchronous read). */
export async function readMountInfo(): Promise<MountInfoEntry[]> {
  try {
    return await readHostMountInfo();
  } catch (err) {
    throw new InternalError('cannot read /proc/self/mountinfo', { cause: err });
  }
}

/**
 * The visible entry at `mountPoint` (a real path), if any: with mounts stacked on the same
 * point, the one no other mount there sits on.
 */
export function topMountAt(
  entries: readonly MountInfoEntry[],
  mountPoint: string,
): MountInfoEntry | undefined {
  const here = entries.filter((e) => e.mountPoint === mountPoint);
  return here.find((e) => !here.some((o) => o.parentId === e.mountId)) ?? here.at(-1);
}
