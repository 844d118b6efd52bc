/**
 * Everything a test daemon can leave on the node, read from the node itself (not from crisp),
 * and a check that each trace belongs to an object crisp still records: the leak check of the
 * recovery tests.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunningCrisp, TestDirs } from './daemon.js';
import { mountsUnder, processesMentioning } from './host.js';

export interface NodeTraces {
  /** Pinned network namespaces (file names: sandbox ids). */
  netns: string[];
  /** Sandbox ids with a CNI result cache entry. */
  cniCache: string[];
  /** IPs host-local has leased on the test network. */
  leases: string[];
  /** Mount points under the test's base dir, except the netns directory's own bind mount. */
  mounts: string[];
  /** conmon processes of this daemon (their argv names its dirs). */
  conmons: number[];
  /** Entries under the run dir's bundles, the root's containers and runc's state dir. */
  bundles: string[];
  containerDirs: string[];
  runcStates: string[];
  /** Unpacks in progress or left over in the layer store. */
  layerTemps: string[];
  /** veth ports on the test bridge. */
  veths: number;
}

const ls = (dir: string): Promise<string[]> => readdir(dir).catch((): string[] => []);

export async function nodeTraces(dirs: TestDirs): Promise<NodeTraces> {
  const netnsDir = join(dirs.run, 'netns');
  const cache = await ls(join(dirs.root, 'cni', 'results'));
  return {
    netns: await ls(netnsDir),
    cniCache: [...new Set(cache.map((f) => /([0-9a-f]{64})/.exec(f)?.[1] ?? f))],
    leases: (await ls(join(dirs.network.ipamDir, 'crisp-e2e'))).filter((f) => /^\d+\.\d+\.\d+\.\d+$/.test(f)),
    mounts: (await mountsUnder(dirs.base)).filter((m) => m !== netnsDir),
    conmons: (await processesMentioning(dirs.run)).filter((pid) => pid !== process.pid),
    bundles: await ls(join(dirs.run, 'bundles')),
    containerDirs: await ls(join(dirs.root, 'containers')),
    runcStates: await ls(join(dirs.run, 'runc')),
    layerTemps: (await ls(join(dirs.root, 'layers'))).filter((f) => f.startsWith('.tmp')),
    veths: (await ls(`/sys/class/net/${dirs.network.bridge}/brif`)).length,
  };
}

export interface DebugState {
  pods: { id: string; state: string; ready: boolean }[];
  containers: { id: string; pod: string; kind: string; name: string; state: string; pid: number | null }[];
  store: { intents: number };
}

export async function debugState(crisp: RunningCrisp): Promise<DebugState> {
  return (await (await fetch(`${crisp.metricsUrl}/debug/state`)).json()) as DebugState;
}

const ACTIVE = new Set(['created', 'running', 'paused']);

/**
 * Asserts that every trace on the node belongs to a pod or container crisp records, that every
 * live container has its conmon and runtime state, and that no intent is left (`context` names
 * the case in failures).
 */
export async function assertNoLeaks(crisp: RunningCrisp, context: string): Promise<NodeTraces> {
  const dirs = crisp.dirs;
  const state = await debugState(crisp);
  const traces = await nodeTraces(dirs);
  const pods = new Set(state.pods.map((p) => p.id));
  const containers = new Set(state.containers.map((c) => c.id));
  const active = new Set(state.containers.filter((c) => ACTIVE.has(c.state)).map((c) => c.id));
  const where = `${context}: ${JSON.stringify(traces)}; recorded ${JSON.stringify(state)}`;
  assert.equal(state.store.intents, 0, `no intent is left (${where})`);
  for (const id of traces.netns) assert.ok(pods.has(id), `netns ${id} belongs to a pod (${where})`);
  for (const id of traces.cniCache) assert.ok(pods.has(id), `CNI cache ${id} belongs to a pod (${where})`);
  assert.equal(traces.leases.length, traces.cniCache.length, `one IP lease per CNI attachment (${where})`);
  assert.equal(traces.veths, traces.cniCache.length, `one veth per CNI attachment (${where})`);
  assert.deepEqual(
    [...traces.runcStates].sort(),
    [...active].sort(),
    `runtime state = live containers (${where})`,
  );
  assert.equal(traces.conmons.length, active.size, `one conmon per live container (${where})`);
  for (const id of traces.bundles)
    assert.ok(containers.has(id), `bundle ${id} belongs to a container (${where})`);
  for (const id of traces.containerDirs) {
    assert.ok(containers.has(id), `container dir ${id} belongs to a container (${where})`);
  }
  for (const m of traces.mounts) {
    const id = /\/([0-9a-f]{64})(\/|$)/.exec(m)?.[1];
    const owned = id !== undefined && (active.has(id) || pods.has(id));
    assert.ok(owned, `mount ${m} belongs to a live container or a pod (${where})`);
  }
  assert.deepEqual(traces.layerTemps, [], `no partial layer (${where})`);
  return traces;
}
