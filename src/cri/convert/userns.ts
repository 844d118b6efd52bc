/** CRI UserNamespace (NamespaceOption.userns_options) → the engine's id maps. Pure. */
import type { UserNamespace__Output } from '../../generated/runtime/v1/UserNamespace.js';
import type { IDMapping__Output } from '../../generated/runtime/v1/IDMapping.js';
import type { IdMaps } from '../../container/rootfs.js';
import { InvalidArgumentError } from '../../errors.js';

const MAX_ID = 2 ** 32 - 1;
/** The kernel accepts at most this many ranges per map. */
const MAX_RANGES = 340;

/** CRI IDMappings → id map ranges: at least one, none empty, overlapping or past 32 bits. */
export function idMapRanges(list: IDMapping__Output[], field: string): IdMaps['uids'] {
  if (list.length === 0) throw new InvalidArgumentError(field, 'needs at least one mapping');
  if (list.length > MAX_RANGES) {
    throw new InvalidArgumentError(field, `${list.length} mappings; the kernel takes at most ${MAX_RANGES}`);
  }
  const out = list.map((m, i) => {
    if (m.length <= 0 || m.container_id + m.length - 1 > MAX_ID || m.host_id + m.length - 1 > MAX_ID) {
      throw new InvalidArgumentError(
        `${field}[${i}]`,
        `container_id ${m.container_id}, host_id ${m.host_id}, length ${m.length} is not a range of 32-bit ids`,
      );
    }
    return { containerId: m.container_id, hostId: m.host_id, size: m.length };
  });
  for (const [key, name] of [
    ['containerId', 'container_id'],
    ['hostId', 'host_id'],
  ] as const) {
    const sorted = [...out].sort((a, b) => a[key] - b[key]);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1];
      const cur = sorted[i];
      if (prev && cur && cur[key] < prev[key] + prev.size) {
        throw new InvalidArgumentError(field, `the ${name} ranges overlap`);
      }
    }
  }
  return out;
}

/**
 * The pod's user namespace: undefined for NODE (the host's, also when unset); the maps for POD.
 * CONTAINER and TARGET, maps with NODE, and empty, overlapping or out-of-range maps are
 * InvalidArgumentErrors naming the field.
 */
export function usernsFromCri(
  opts: UserNamespace__Output | null | undefined,
  field: string,
): IdMaps | undefined {
  if (!opts) return undefined;
  if (opts.mode === 'NODE') {
    if (opts.uids.length > 0 || opts.gids.length > 0) {
      throw new InvalidArgumentError(
        `${field}.mode`,
        'NODE uses the host user namespace and takes no uid/gid mappings',
      );
    }
    return undefined;
  }
  if (opts.mode !== 'POD') {
    throw new InvalidArgumentError(
      `${field}.mode`,
      `${opts.mode} is not supported for user namespaces: use POD or NODE`,
    );
  }
  return { uids: idMapRanges(opts.uids, `${field}.uids`), gids: idMapRanges(opts.gids, `${field}.gids`) };
}
