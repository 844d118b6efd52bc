/**
 * Pod networking through CNI plugins: ADD, DEL and CHECK over the network list the config dir
 * selects, and the libcni-format result cache that lets DEL and CHECK work with exactly what
 * was added, after the config changed or crisp restarted. The contract is summarised in
 * /work/shared/notes/cni.md; config loading is in cni-conf.ts, the cache in cni-cache.ts and
 * result parsing in cni-result.ts.
 *
 * One exec per plugin through util/command.ts, each bounded by the timeout; the plugin gets
 * crisp's environment plus CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS and
 * CNI_PATH, and its execution config on stdin. Operations for one sandbox id are serialized.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AlreadyExistsError,
  CanceledError,
  type CrispError,
  DeadlineExceededError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  UnavailableError,
} from '../errors.js';
import type { Logger } from '../log/logger.js';
import { CommandFailure, runCommand } from '../util/command.js';
import { KeyedMutex } from '../util/keyed-mutex.js';
import {
  type CachedFile,
  type CacheScan,
  CACHE_KIND,
  type CniCacheEntry,
  removeCacheFile,
  scanCache,
  writeCacheEntry,
} from './cni-cache.js';
import {
  CNI_NAME_RE,
  CniConfigProblem,
  type CniNetworkList,
  errnoCode,
  findPluginBinary,
  isRecord,
  loadSelectedNetwork,
  parseNetworkConfig,
  versionAtLeast,
} from './cni-conf.js';
import { failpoint } from '../util/failpoint.js';
import { type CniIp, parseResultIps } from './cni-result.js';
import { hostLocalLeaseDirs, readLeases } from './ipam-leases.js';

export type { CniIp } from './cni-result.js';

/** The interface every pod network is attached as. */
export const POD_IFNAME = 'eth0';
const DEFAULT_TIMEOUT_MS = 30_000;
/** "text file busy" (a plugin binary being replaced): retries and the pause between them. */
const TXTBSY_RETRIES = 5;
const TXTBSY_DELAY_MS = 200;
/** CNI error codes that say the configuration or the call is wrong, not that retrying may help. */
const CONFIG_ERROR_CODES = new Set([1, 2, 4, 6, 7]);
const NOT_READY = 'NetworkPluginNotReady';

export interface CniPortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp' | 'sctp';
  hostIP: string;
}

export interface CniPod {
  /** CNI_CONTAINERID. */
  sandboxId: string;
  /** CNI_NETNS ('' allowed on DEL when the netns is gone). */
  netnsPath: string;
  /** For CNI_ARGS K8S_POD_*. */
  name: string;
  namespace: string;
  uid: string;
  portMappings?: CniPortMapping[];
  dns?: { servers: string[]; searches: string[]; options: string[] };
  bandwidth?: { ingressRate?: number; ingressBurst?: number; egressRate?: number; egressBurst?: number };
  /**
   * Extra runtimeConfig capability values, e.g. { ipRanges: [[{subnet:'10.85.0.0/16'}]] }.
   * portMappings, dns and bandwidth above take precedence over entries of the same name here.
   */
  capabilityArgs?: Record<string, unknown>;
}

export type CniPodRef = Pick<CniPod, 'sandboxId' | 'netnsPath' | 'name' | 'namespace' | 'uid'>;

export interface CniAttachment {
  networkName: string;
  ifName: string;
  /** The config file ADD used ('' for a cache entry another tool wrote). */
  configFile: string;
  /** IPv4 first. */
  ips: CniIp[];
  /** The final plugin's result, as the plugin printed it. */
  result: unknown;
}

export interface CniStatus {
  ready: boolean;
  reason: string;
  message: string;
  file?: string;
}

export type CniOp = 'ADD' | 'DEL' | 'CHECK';

export interface CniManagerOptions {
  confDir: string;
  binDirs: string[];
  /** Where result cache files go (libcni: /var/lib/cni/results). */
  cacheDir: string;
  log: Logger;
  /** Bound on each plugin exec. Default 30 s. */
  timeoutMs?: number;
  /** Called after every plugin exec, failed or not, e.g. to feed a histogram. */
  observe?: (op: CniOp, pluginType: string, seconds: number) => void;
  /**
   * CNI_IFNAME of the attachments this manager makes. Default `eth0`; a second manager with
   * `lo` over a loopback-only config dir gives the hidden loopback network runtimes add.
   */
  ifName?: string;
}

/** What one operation over a network list runs with. */
interface Invocation {
  op: CniOp;
  network: CniNetworkList;
  /** Resolved binary per plugin, same order as network.plugins. */
  binaries: string[];
  sandboxId: string;
  netns: string;
  ifName: string;
  cniArgs: [string, string][];
  capabilityArgs: Record<string, unknown>;
  signal: AbortSignal | undefined;
}

export class CniManager {
  readonly #confDir: string;
  readonly #binDirs: string[];
  readonly #cacheDir: string;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  readonly #observe: CniManagerOptions['observe'];
  readonly #ifName: string;
  readonly #mutex = new KeyedMutex();

  constructor(opts: CniManagerOptions) {
    this.#ifName = opts.ifName ?? POD_IFNAME;
    checkIfName(this.#ifName);
    this.#confDir = opts.confDir;
    this.#binDirs = [...opts.binDirs];
    this.#cacheDir = opts.cacheDir;
    this.#log = opts.log;
    this.#timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#observe = opts.observe;
  }

  /**
   * Loads and validates the network config CNI would use now. Not ready, with a message naming
   * the file and what is wrong, when there is none, it is malformed, or a plugin binary is missing.
   */
  async status(): Promise<CniStatus> {
    let network: CniNetworkList | undefined;
    try {
      network = await loadSelectedNetwork(this.#confDir);
    } catch (err) {
      if (err instanceof CniConfigProblem) {
        return { ready: false, reason: NOT_READY, message: err.message, file: err.file };
      }
      return {
        ready: false,
        reason: NOT_READY,
        message: `cannot read the CNI config directory ${this.#confDir}: ${errText(err)}`,
      };
    }
    if (network === undefined) {
      return { ready: false, reason: NOT_READY, message: this.#noConfigMessage() };
    }
    const missing = await this.#missingPlugin(network);
    if (missing !== undefined) {
      return { ready: false, reason: NOT_READY, message: missing, file: network.source };
    }
    return { ready: true, reason: '', message: '', file: network.source };
  }

  /**
   * ADD through the whole list as the manager's ifName (`eth0`), then record the result in the cache. On a failure the
   * plugins run so far (the failing one included) get a best-effort DEL, and the error says which
   * plugin failed and how. AlreadyExistsError if the sandbox already has a cached attachment.
   */
  async add(pod: CniPod, signal?: AbortSignal): Promise<CniAttachment> {
    checkSandboxId(pod.sandboxId);
    if (pod.netnsPath === '')
      throw new InvalidArgumentError('netnsPath', 'ADD needs a network namespace path');
    const cniArgs = podCniArgs(pod);
    const capabilityArgs = podCapabilityArgs(pod);
    return this.#mutex.run(pod.sandboxId, async () => {
      throwIfAborted(signal, 'ADD', pod.sandboxId);
      const existing = (await this.#scan(pod.sandboxId)).files[0];
      if (existing !== undefined) {
        throw new AlreadyExistsError('CNI attachment of pod sandbox', pod.sandboxId, {
          hint: `it is attached to network "${existing.entry.networkName}"; DEL it first`,
        });
      }
      const network = await this.#requireSelectedNetwork();
      const inv: Invocation = {
        op: 'ADD',
        network,
        binaries: await this.#binaries(network, 'ADD', pod.sandboxId),
        sandboxId: pod.sandboxId,
        netns: pod.netnsPath,
        ifName: this.#ifName,
        cniArgs,
        capabilityArgs,
        signal,
      };
      let prevResult: Record<string, unknown> | undefined;
      for (let i = 0; i < network.plugins.length; i++) {
        try {
          prevResult = await this.#addOne(inv, i, prevResult);
        } catch (err) {
          await this.#rollback(inv, i, prevResult);
          throw err;
        }
      }
      const result = prevResult ?? {};
      // A crash here leaves the plugins' state (an IP, a veth) with no cache entry to say so.
      failpoint('cni-add:before-cache');
      const entry: CniCacheEntry = {
        kind: CACHE_KIND,
        containerId: pod.sandboxId,
        config: network.bytes.toString('base64'),
        ifName: this.#ifName,
        networkName: network.name,
        netns: pod.netnsPath,
        cniArgs,
        capabilityArgs,
        result,
        crispConfigFile: network.source,
      };
      try {
        await writeCacheEntry(this.#cacheDir, entry);
      } catch (err) {
        await this.#rollback(inv, network.plugins.length - 1, result);
        throw new InternalError(
          `cannot write the CNI result cache for pod sandbox ${pod.sandboxId} in ${this.#cacheDir}: ${errText(err)}`,
          { cause: err },
        );
      }
      const attachment = toAttachment(entry);
      this.#log.debug(
        { sandboxId: pod.sandboxId, network: network.name, ips: attachment.ips.map((i) => i.address) },
        'CNI ADD done',
      );
      return attachment;
    });
  }

  /**
   * DEL in reverse plugin order, with the cached config, args and result when there is a cache
   * entry, else with the current config (no prevResult); with neither, nothing to do.
   * Idempotent; the cache entry is removed only after the DEL succeeded.
   */
  async del(pod: CniPodRef, signal?: AbortSignal): Promise<void> {
    checkSandboxId(pod.sandboxId);
    await this.#mutex.run(pod.sandboxId, async () => {
      throwIfAborted(signal, 'DEL', pod.sandboxId);
      const scan = await this.#scan(pod.sandboxId);
      const usable = this.#usable(scan.files);
      for (const { cached, network } of usable) {
        const inv = await this.#cachedInvocation('DEL', cached, network, pod, signal);
        const prev = versionAtLeast(network.cniVersion, '0.4.0') ? cached.entry.result : undefined;
        await this.#delRange(inv, network.plugins.length - 1, prev);
        await removeCacheFile(cached.path, this.#cacheDir);
        this.#log.debug({ sandboxId: pod.sandboxId, network: network.name }, 'CNI DEL done (cached)');
      }
      if (usable.length > 0) return;

      let network: CniNetworkList | undefined;
      try {
        network = await loadSelectedNetwork(this.#confDir);
      } catch (err) {
        this.#log.warn(
          { sandboxId: pod.sandboxId, err },
          'no CNI cache entry and no usable network config: nothing to DEL',
        );
        return;
      }
      if (network === undefined) {
        this.#log.debug(
          { sandboxId: pod.sandboxId },
          'no CNI cache entry and no network config: nothing to DEL',
        );
        return;
      }
      const inv: Invocation = {
        op: 'DEL',
        network,
        binaries: await this.#binaries(network, 'DEL', pod.sandboxId),
        sandboxId: pod.sandboxId,
        netns: pod.netnsPath,
        ifName: this.#ifName,
        cniArgs: podCniArgs(pod),
        capabilityArgs: {},
        signal,
      };
      await this.#delRange(inv, network.plugins.length - 1, undefined);
      // An unreadable cache file of this very attachment goes too, now that the DEL is done.
      for (const bad of scan.unreadable) {
        if (bad.path.endsWith(`/${network.name}-${pod.sandboxId}-${this.#ifName}`)) {
          await removeCacheFile(bad.path, this.#cacheDir);
        }
      }
      this.#log.debug({ sandboxId: pod.sandboxId, network: network.name }, 'CNI DEL done (current config)');
    });
  }

  /**
   * CHECK with the cached config, args and result: a no-op when the cached list's cniVersion is
   * below 0.4.0 or it sets disableCheck. NotFoundError when the sandbox has no cache entry.
   */
  async check(pod: CniPodRef, signal?: AbortSignal): Promise<void> {
    checkSandboxId(pod.sandboxId);
    if (pod.netnsPath === '')
      throw new InvalidArgumentError('netnsPath', 'CHECK needs a network namespace path');
    await this.#mutex.run(pod.sandboxId, async () => {
      throwIfAborted(signal, 'CHECK', pod.sandboxId);
      const usable = this.#usable((await this.#scan(pod.sandboxId)).files);
      if (usable.length === 0) {
        throw new NotFoundError('CNI result cache entry for pod sandbox', pod.sandboxId, {
          hint: 'the sandbox was never attached, or its attachment was deleted',
        });
      }
      for (const { cached, network } of usable) {
        if (!versionAtLeast(network.cniVersion, '0.4.0') || network.disableCheck) continue;
        const inv = await this.#cachedInvocation('CHECK', cached, network, pod, signal);
        for (let i = 0; i < network.plugins.length; i++) {
          await this.#exec(inv, i, cached.entry.result);
        }
      }
    });
  }

  /** The cached attachment of a sandbox, or undefined. */
  async cached(sandboxId: string): Promise<CniAttachment | undefined> {
    checkSandboxId(sandboxId);
    const first = (await this.#scan(sandboxId)).files[0];
    return first === undefined ? undefined : toAttachment(first.entry);
  }

  /** Sandbox ids that have a cache entry for the pod interface, sorted. */
  async cachedSandboxIds(): Promise<string[]> {
    const scan = await this.#scanAll({ ifName: this.#ifName });
    return [...new Set(scan.files.map((f) => f.entry.containerId))].sort();
  }

  /**
   * Sandbox ids holding host-local IPAM allocations in the network crisp's config selects
   * (ipam-leases.ts); none without a config. A DEL with the current config releases them.
   */
  async leasedSandboxIds(): Promise<string[]> {
    let network: CniNetworkList | undefined;
    try {
      network = await loadSelectedNetwork(this.#confDir);
    } catch {
      return [];
    }
    if (network === undefined) return [];
    const ids = new Set<string>();
    for (const dir of hostLocalLeaseDirs(network)) {
      for (const lease of await readLeases(dir)) ids.add(lease.sandboxId);
    }
    return [...ids].sort();
  }

  // --- internals -------------------------------------------------------------------------------

  #noConfigMessage(): string {
    return `no CNI network configuration in ${this.#confDir}: add a .conflist file there (see docs/config.md)`;
  }

  async #scan(sandboxId: string): Promise<CacheScan> {
    return this.#scanAll({ containerId: sandboxId, ifName: this.#ifName });
  }

  async #scanAll(filter: { containerId?: string; ifName?: string }): Promise<CacheScan> {
    let scan: CacheScan;
    try {
      scan = await scanCache(this.#cacheDir, filter);
    } catch (err) {
      throw new InternalError(`cannot read the CNI result cache ${this.#cacheDir}: ${errText(err)}`, {
        cause: err,
      });
    }
    // Per sandbox a bad file is news; a listing for a reconciler would repeat it on every pass.
    const level = filter.containerId === undefined ? 'debug' : 'warn';
    for (const bad of scan.unreadable) {
      this.#log[level]({ file: bad.path, problem: bad.problem }, 'ignoring an unusable CNI cache file');
    }
    return scan;
  }

  /** The cache entries whose recorded config is usable, each with its network list. */
  /** A DEL or CHECK of a cached attachment: its network, interface, CNI_ARGS and capabilities. */
  async #cachedInvocation(
    op: 'DEL' | 'CHECK',
    cached: CachedFile,
    network: CniNetworkList,
    pod: CniPodRef,
    signal: AbortSignal | undefined,
  ): Promise<Invocation> {
    return {
      op,
      network,
      binaries: await this.#binaries(network, op, pod.sandboxId),
      sandboxId: pod.sandboxId,
      netns: pod.netnsPath,
      ifName: cached.entry.ifName,
      cniArgs: cached.entry.cniArgs.length > 0 ? cached.entry.cniArgs : podCniArgs(pod),
      capabilityArgs: cached.entry.capabilityArgs,
      signal,
    };
  }

  #usable(files: CachedFile[]): { cached: CachedFile; network: CniNetworkList }[] {
    return files.flatMap((cached) => {
      const network = this.#cachedNetwork(cached);
      return network === undefined ? [] : [{ cached, network }];
    });
  }

  /** The network list a cache entry recorded, or undefined (logged) if its config is unusable. */
  #cachedNetwork(cached: CachedFile): CniNetworkList | undefined {
    try {
      const network = parseNetworkConfig(
        Buffer.from(cached.entry.config, 'base64'),
        `cache file ${cached.path}`,
        'auto',
      );
      if (network.name !== cached.entry.networkName) {
        throw new CniConfigProblem(
          `cache file ${cached.path}`,
          `network name "${network.name}" does not match "${cached.entry.networkName}"`,
        );
      }
      return network;
    } catch (err) {
      this.#log.warn({ file: cached.path, err }, 'ignoring a CNI cache entry whose config is unusable');
      return undefined;
    }
  }

  /** The selected network, or the typed error that says why there is none. */
  async #requireSelectedNetwork(): Promise<CniNetworkList> {
    let network: CniNetworkList | undefined;
    try {
      network = await loadSelectedNetwork(this.#confDir);
    } catch (err) {
      if (err instanceof CniConfigProblem) {
        throw new FailedPreconditionError(err.message, { cause: err, details: { file: err.file } });
      }
      throw new UnavailableError(`cannot read the CNI config directory ${this.#confDir}: ${errText(err)}`, {
        cause: err,
      });
    }
    if (network === undefined) throw new UnavailableError(this.#noConfigMessage());
    return network;
  }

  async #missingPlugin(network: CniNetworkList): Promise<string | undefined> {
    for (const plugin of network.plugins) {
      if ((await findPluginBinary(this.#binDirs, plugin.type)) === undefined) {
        return `CNI network configuration ${network.source}: plugin "${plugin.type}" not found in ${this.#binDirs.join(', ')}`;
      }
    }
    return undefined;
  }

  async #binaries(network: CniNetworkList, op: CniOp, sandboxId: string): Promise<string[]> {
    const paths: string[] = [];
    for (const plugin of network.plugins) {
      const path = await findPluginBinary(this.#binDirs, plugin.type);
      if (path === undefined) {
        throw new UnavailableError(
          `cannot ${op} pod sandbox ${sandboxId} ${prep(op)} network "${network.name}": CNI plugin "${plugin.type}" not found in ${this.#binDirs.join(', ')}`,
          { details: { plugin: plugin.type, file: network.source } },
        );
      }
      paths.push(path);
    }
    return paths;
  }

  /** ADD for plugin `i`; returns its parsed result. */
  async #addOne(
    inv: Invocation,
    i: number,
    prevResult: Record<string, unknown> | undefined,
  ): Promise<Record<string, unknown>> {
    const stdout = await this.#exec(inv, i, prevResult);
    let parsed: unknown;
    try {
      parsed = JSON.parse(stdout);
    } catch {
      parsed = undefined;
    }
    if (!isRecord(parsed)) {
      const type = inv.network.plugins[i]?.type ?? '?';
      throw new UnavailableError(
        `CNI plugin "${type}" returned no valid result on ADD of pod sandbox ${inv.sandboxId} to network "${inv.network.name}": ${JSON.stringify(clip(stdout, 200))}`,
        { details: { plugin: type, op: 'ADD', sandboxId: inv.sandboxId, network: inv.network.name } },
      );
    }
    return parsed;
  }

  /**
   * Best-effort DEL of plugins `last`..0 after a failed ADD: each plugin gets its DEL even if a
   * later one's failed (failures are only logged; a later DEL of the sandbox retries them).
   */
  async #rollback(
    inv: Invocation,
    last: number,
    prevResult: Record<string, unknown> | undefined,
  ): Promise<void> {
    const del: Invocation = { ...inv, op: 'DEL', signal: undefined };
    const prev = versionAtLeast(inv.network.cniVersion, '0.4.0') ? prevResult : undefined;
    for (let i = last; i >= 0; i--) {
      try {
        await this.#exec(del, i, prev);
      } catch (err) {
        this.#log.warn(
          { sandboxId: inv.sandboxId, network: inv.network.name, plugin: inv.network.plugins[i]?.type, err },
          'DEL after a failed CNI ADD failed',
        );
      }
    }
  }

  /** DEL for plugins `last` down to 0; stops at the first failure (libcni does too). */
  async #delRange(
    inv: Invocation,
    last: number,
    prevResult: Record<string, unknown> | undefined,
  ): Promise<void> {
    for (let i = last; i >= 0; i--) await this.#exec(inv, i, prevResult);
  }

  /** Runs plugin `i` once for `inv.op`; returns its stdout; throws the typed error on failure. */
  async #exec(inv: Invocation, i: number, prevResult: Record<string, unknown> | undefined): Promise<string> {
    const plugin = inv.network.plugins[i];
    const binary = inv.binaries[i];
    if (plugin === undefined || binary === undefined) throw new InternalError(`no CNI plugin at index ${i}`);
    const stdin = JSON.stringify(executionConfig(inv.network, i, prevResult, inv.capabilityArgs));
    const env = {
      ...inheritedEnv(),
      CNI_COMMAND: inv.op,
      CNI_CONTAINERID: inv.sandboxId,
      CNI_NETNS: inv.netns,
      CNI_IFNAME: inv.ifName,
      CNI_ARGS: inv.cniArgs.map(([k, v]) => `${k}=${v}`).join(';'),
      CNI_PATH: this.#binDirs.join(':'),
    };
    const started = performance.now();
    let failure: unknown;
    let stdout = '';
    for (let attempt = 0; ; attempt++) {
      try {
        stdout = (
          await runCommand(binary, [], { timeoutMs: this.#timeoutMs, signal: inv.signal, input: stdin, env })
        ).stdout;
        failure = undefined;
        break;
      } catch (err) {
        failure = err;
        if (!isTextFileBusy(err) || attempt >= TXTBSY_RETRIES) break;
        this.#log.debug({ plugin: plugin.type, op: inv.op, attempt }, 'CNI plugin binary busy; retrying');
        try {
          await sleep(TXTBSY_DELAY_MS, undefined, { signal: inv.signal });
        } catch {
          break;
        }
      }
    }
    const seconds = (performance.now() - started) / 1000;
    this.#log.debug(
      {
        plugin: plugin.type,
        op: inv.op,
        sandboxId: inv.sandboxId,
        network: inv.network.name,
        durationMs: Math.round(seconds * 1000),
        ok: failure === undefined,
      },
      'CNI plugin finished',
    );
    try {
      this.#observe?.(inv.op, plugin.type, seconds);
    } catch (err) {
      this.#log.warn({ err }, 'CNI observe callback threw');
    }
    if (failure !== undefined) throw this.#pluginError(inv, plugin.type, failure);
    return stdout;
  }

  #pluginError(inv: Invocation, type: string, err: unknown): CrispError {
    const where = `pod sandbox ${inv.sandboxId} ${prep(inv.op)} network "${inv.network.name}"`;
    const details: Record<string, unknown> = {
      plugin: type,
      op: inv.op,
      sandboxId: inv.sandboxId,
      network: inv.network.name,
    };
    if (!(err instanceof CommandFailure)) {
      return new InternalError(`CNI plugin "${type}" failed to ${inv.op} ${where}: ${errText(err)}`, {
        cause: err,
        details,
      });
    }
    details.exitCode = err.exitCode;
    details.stderr = err.stderrTail;
    switch (err.reason) {
      case 'timeout':
        return new DeadlineExceededError(
          `CNI plugin "${type}" did not finish ${inv.op} of ${where} within ${this.#timeoutMs} ms`,
          { cause: err, details: { ...details, timeoutMs: this.#timeoutMs } },
        );
      case 'aborted':
        return new CanceledError(`CNI ${inv.op} of ${where} was cancelled while plugin "${type}" ran`, {
          cause: err,
          details,
        });
      case 'spawn':
        return new UnavailableError(
          `CNI plugin "${type}" could not be started to ${inv.op} ${where}: ${err.errno ?? err.stderrTail}`,
          { cause: err, details },
        );
      case 'exit':
        break;
    }
    const cniError = parseCniError(err.stdoutTail);
    if (cniError !== undefined) {
      details.cniCode = cniError.code;
      const what = `code ${cniError.code}: ${cniError.msg}${cniError.details ? ` (${cniError.details})` : ''}`;
      const message = `CNI plugin "${type}" failed to ${inv.op} ${where}: ${what}`;
      return CONFIG_ERROR_CODES.has(cniError.code)
        ? new FailedPreconditionError(message, { cause: err, details })
        : new UnavailableError(message, { cause: err, details });
    }
    const output = err.stdoutTail !== '' ? err.stdoutTail : err.stderrTail;
    return new UnavailableError(
      `CNI plugin "${type}" failed to ${inv.op} ${where}: exit code ${err.exitCode ?? '?'}${output ? `: ${clip(output, 2_000)}` : ''}`,
      { cause: err, details },
    );
  }
}

// --- pure helpers ----------------------------------------------------------------------------------

/** The stdin of plugin `i` (notes/cni.md §3). */
export function executionConfig(
  network: CniNetworkList,
  i: number,
  prevResult: Record<string, unknown> | undefined,
  capabilityArgs: Record<string, unknown>,
): Record<string, unknown> {
  const plugin = network.plugins[i];
  if (plugin === undefined) throw new InternalError(`no CNI plugin at index ${i}`);
  const conf: Record<string, unknown> = { ...plugin.raw, name: network.name, cniVersion: network.cniVersion };
  if (prevResult !== undefined) conf.prevResult = prevResult;
  const runtimeConfig: Record<string, unknown> = {};
  for (const cap of plugin.capabilities) {
    if (Object.hasOwn(capabilityArgs, cap)) runtimeConfig[cap] = capabilityArgs[cap];
  }
  if (Object.keys(runtimeConfig).length > 0) conf.runtimeConfig = runtimeConfig;
  return conf;
}

/** CNI_ARGS pairs for a Kubernetes pod (notes/cni.md §5). */
export function podCniArgs(pod: CniPodRef): [string, string][] {
  const pairs: [string, string][] = [
    ['IgnoreUnknown', '1'],
    ['K8S_POD_NAMESPACE', pod.namespace],
    ['K8S_POD_NAME', pod.name],
    ['K8S_POD_INFRA_CONTAINER_ID', pod.sandboxId],
    ['K8S_POD_UID', pod.uid],
  ];
  for (const [k, v] of pairs) {
    if (/[;=\0]/.test(v)) {
      throw new InvalidArgumentError(
        k,
        `${JSON.stringify(v)} cannot be passed in CNI_ARGS (contains ; = or NUL)`,
      );
    }
  }
  return pairs;
}

/** The runtimeConfig values crisp can offer for a pod (notes/cni.md §4). */
export function podCapabilityArgs(pod: CniPod): Record<string, unknown> {
  const caps: Record<string, unknown> = { ...pod.capabilityArgs };
  if (pod.portMappings !== undefined) {
    caps.portMappings = pod.portMappings
      .filter((p) => p.hostPort > 0)
      .map((p) => ({
        hostPort: p.hostPort,
        containerPort: p.containerPort,
        protocol: p.protocol.toLowerCase(),
        hostIP: p.hostIP,
      }));
  }
  if (pod.dns !== undefined) {
    caps.dns = {
      servers: [...pod.dns.servers],
      searches: [...pod.dns.searches],
      options: [...pod.dns.options],
    };
  }
  if (pod.bandwidth !== undefined) {
    const bw: Record<string, number> = {};
    for (const key of ['ingressRate', 'ingressBurst', 'egressRate', 'egressBurst'] as const) {
      const v = pod.bandwidth[key];
      if (v !== undefined) bw[key] = v;
    }
    caps.bandwidth = bw;
  }
  return caps;
}

export interface CniErrorObject {
  code: number;
  msg: string;
  details: string;
}

/** A plugin's `{code,msg,details}` error on stdout, if that is what `stdout` holds. */
export function parseCniError(stdout: string): CniErrorObject | undefined {
  if (stdout === '') return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdout);
  } catch {
    return undefined;
  }
  if (!isRecord(parsed) || typeof parsed.code !== 'number') return undefined;
  return {
    code: parsed.code,
    msg: typeof parsed.msg === 'string' ? parsed.msg : '',
    details: typeof parsed.details === 'string' ? parsed.details : '',
  };
}

function toAttachment(entry: CniCacheEntry): CniAttachment {
  return {
    networkName: entry.networkName,
    ifName: entry.ifName,
    configFile: entry.crispConfigFile ?? '',
    ips: parseResultIps(entry.result, entry.ifName),
    result: entry.result,
  };
}

function checkSandboxId(id: string): void {
  if (!CNI_NAME_RE.test(id)) {
    throw new InvalidArgumentError('sandboxId', `${JSON.stringify(id)} does not match ${CNI_NAME_RE.source}`);
  }
}

/** libcni's interface name rules: 1-15 characters, not . or .., no / : or whitespace. */
function checkIfName(ifName: string): void {
  if (
    ifName.length === 0 ||
    ifName.length > 15 ||
    ifName === '.' ||
    ifName === '..' ||
    /[/:\s]/.test(ifName)
  ) {
    throw new InvalidArgumentError('ifName', `${JSON.stringify(ifName)} is not a valid interface name`);
  }
}

function throwIfAborted(signal: AbortSignal | undefined, op: CniOp, sandboxId: string): void {
  if (signal?.aborted) throw new CanceledError(`CNI ${op} of pod sandbox ${sandboxId} was cancelled`);
}

function isTextFileBusy(err: unknown): boolean {
  return (
    err instanceof CommandFailure &&
    err.reason === 'spawn' &&
    (err.errno === 'ETXTBSY' || /text file busy/i.test(err.stderrTail))
  );
}

/** crisp's own environment (libcni passes it on, with the CNI_* variables overriding). */
function inheritedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined) env[k] = v;
  }
  return env;
}

function prep(op: CniOp): string {
  return op === 'ADD' ? 'to' : op === 'DEL' ? 'from' : 'in';
}

function clip(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max)}…` : text;
}

function errText(err: unknown): string {
  const code = errnoCode(err);
  const msg = err instanceof Error ? err.message : String(err);
  return code !== undefined && !msg.includes(code) ? `${code}: ${msg}` : msg;
}
