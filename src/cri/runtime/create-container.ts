/** CreateContainer: convert the ContainerConfig into the engine's terms; the pod does the rest. */
import type { CreateContainerRequest__Output } from '../../generated/runtime/v1/CreateContainerRequest.js';
import type { CreateContainerResponse } from '../../generated/runtime/v1/CreateContainerResponse.js';
import type { LinuxContainerConfig__Output } from '../../generated/runtime/v1/LinuxContainerConfig.js';
import type { Mount__Output } from '../../generated/runtime/v1/Mount.js';
import type { LinuxContainerSecurityContext__Output } from '../../generated/runtime/v1/LinuxContainerSecurityContext.js';
import type {
  ContainerResourcesInput,
  ContainerSecurityInput,
  SeccompInput,
  ContainerSpecInput,
  MountInput,
  PidNamespaceMode,
} from '../../container/spec-types.js';
import type { UserRequest } from '../../container/user.js';
import { InvalidArgumentError } from '../../errors.js';
import type { ImageMountInput, SandboxManager } from '../../sandbox/manager.js';
import type { JsonValue } from '../../sandbox/manager.js';
import type { UnaryImpl } from '../handler.js';
import { requireMessage } from '../validate.js';
import { checkContainerConfig } from '../checks.js';
import { requireId } from '../limits.js';
import { idMapRanges, usernsFromCri } from '../convert/userns.js';

/** A path in the container: a relative one is read from its root, as runc reads it. */
function fromRoot(path: string): string {
  return path.startsWith('/') ? path : `/${path}`;
}

/**
 * The request's mounts: host paths bound in (MountInput), and image volumes (Mount.image set,
 * host_path ignored), which are always read-only.
 */
function mounts(
  list: Mount__Output[],
  privileged: boolean,
  recursiveReadOnly: boolean,
): { mounts: MountInput[]; imageMounts: ImageMountInput[] } {
  const hostMounts: MountInput[] = [];
  const imageMounts: ImageMountInput[] = [];
  list.forEach((m, i) => {
    const field = `config.mounts[${i}]`;
    // kubelet sets both, with the pod's user namespace maps, for the volumes of such a pod.
    const idmap =
      m.uidMappings.length > 0 || m.gidMappings.length > 0
        ? {
            uids: idMapRanges(m.uidMappings, `${field}.uidMappings`),
            gids: idMapRanges(m.gidMappings, `${field}.gidMappings`),
          }
        : undefined;
    if (m.propagation === 'PROPAGATION_BIDIRECTIONAL' && !privileged) {
      throw new InvalidArgumentError(
        `${field}.propagation`,
        'BIDIRECTIONAL propagation lets the container mount on the host and needs a privileged container',
      );
    }
    if (m.recursive_read_only) {
      if (!m.readonly) {
        throw new InvalidArgumentError(`${field}.recursive_read_only`, 'needs readonly to be set as well');
      }
      if (!recursiveReadOnly) {
        throw new InvalidArgumentError(
          `${field}.recursive_read_only`,
          'this node cannot make mounts read-only recursively (it needs Linux 5.12+ and python3 for bin/crisp-rro-mount; the Status runtime handler features say so)',
        );
      }
    }
    // A relative container path is taken from the container's root, as containerd and runc read it.
    const containerPath = fromRoot(m.container_path);
    const image = m.image?.image ?? '';
    if (image !== '') {
      if (m.propagation === 'PROPAGATION_BIDIRECTIONAL') {
        throw new InvalidArgumentError(
          `${field}.propagation`,
          'an image volume is read-only and cannot be BIDIRECTIONAL',
        );
      }
      imageMounts.push({ containerPath, image, subPath: m.image_sub_path, field });
      return;
    }
    // image_sub_path without an image means nothing (containerd ignores it too).
    if (!m.host_path.startsWith('/')) {
      throw new InvalidArgumentError(`${field}.host_path`, `"${m.host_path}" must be an absolute path`);
    }
    hostMounts.push({
      containerPath,
      hostPath: m.host_path,
      readonly: m.readonly,
      ...(m.recursive_read_only ? { recursiveReadOnly: true } : {}),
      ...(idmap ? { idmap } : {}),
      propagation:
        m.propagation === 'PROPAGATION_BIDIRECTIONAL'
          ? 'bidirectional'
          : m.propagation === 'PROPAGATION_HOST_TO_CONTAINER'
            ? 'host-to-container'
            : 'private',
    });
  });
  return { mounts: hostMounts, imageMounts };
}

const PID_MODE: Record<string, PidNamespaceMode> = {
  POD: 'pod',
  CONTAINER: 'container',
  NODE: 'node',
  TARGET: 'target',
};

/** An int64 id (run_as_user, run_as_group, supplemental_groups[i]); user.ts checks the range. */
function id(value: string, field: string): number {
  const n = Number(value);
  if (value === '' || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError(field, `"${value}" is not an id`);
  }
  return n;
}

const SECCOMP_TYPES: Record<string, SeccompInput['profileType']> = {
  RuntimeDefault: 'runtime-default',
  Unconfined: 'unconfined',
  Localhost: 'localhost',
};

/**
 * The seccomp profile: the `seccomp` SecurityProfile wins; else the deprecated
 * `seccomp_profile_path` (`runtime/default` | `docker/default` | `unconfined` | '' |
 * `localhost/<path>`). Both unset means unconfined, as with containerd and CRI-O (kubelet sends
 * Unconfined unless the pod or --seccomp-default asks for more).
 */
function seccomp(sc: LinuxContainerSecurityContext__Output, f: string): SeccompInput {
  if (sc.seccomp) {
    const profileType = SECCOMP_TYPES[sc.seccomp.profile_type];
    if (profileType === undefined) {
      throw new InvalidArgumentError(
        `${f}.seccomp.profile_type`,
        `unknown type "${sc.seccomp.profile_type}"`,
      );
    }
    return profileType === 'localhost'
      ? { profileType, localhostRef: sc.seccomp.localhost_ref }
      : { profileType };
  }
  const p = sc.seccomp_profile_path;
  if (p === '' || p === 'unconfined') return { profileType: 'unconfined' };
  if (p === 'runtime/default' || p === 'docker/default') return { profileType: 'runtime-default' };
  if (p.startsWith('localhost/')) {
    return {
      profileType: 'localhost',
      localhostRef: p.slice('localhost/'.length),
      field: `${f}.seccomp_profile_path`,
    };
  }
  throw new InvalidArgumentError(
    `${f}.seccomp_profile_path`,
    `"${p}" is not runtime/default, docker/default, unconfined or localhost/<path>`,
  );
}

/**
 * The security context. `supplementalGroupsPolicy` is not in spec-types.ts's
 * ContainerSecurityInput yet: it rides on the same object to user.ts's resolveUser (which the
 * sandbox engine calls with this object), typed by user.ts's UserRequest.
 */
function securityContext(
  sc: LinuxContainerSecurityContext__Output,
): ContainerSecurityInput & Pick<UserRequest, 'supplementalGroupsPolicy'> {
  const f = 'config.linux.security_context';
  const ns = sc.namespace_options;
  return {
    ...(sc.run_as_user ? { runAsUser: id(sc.run_as_user.value, `${f}.run_as_user`) } : {}),
    ...(sc.run_as_group ? { runAsGroup: id(sc.run_as_group.value, `${f}.run_as_group`) } : {}),
    ...(sc.run_as_username !== '' ? { runAsUsername: sc.run_as_username } : {}),
    supplementalGroups: sc.supplemental_groups.map((g, i) => id(g, `${f}.supplemental_groups[${i}]`)),
    supplementalGroupsPolicy: sc.supplemental_groups_policy === 'Strict' ? 'strict' : 'merge',
    readonlyRootfs: sc.readonly_rootfs,
    privileged: sc.privileged,
    noNewPrivs: sc.no_new_privs,
    ...(sc.capabilities
      ? { capabilities: { add: sc.capabilities.add_capabilities, drop: sc.capabilities.drop_capabilities } }
      : {}),
    // An empty list cannot be told from an unset one on the wire: both mean crisp's defaults
    // (containerd's behaviour too, as Go decodes both as nil).
    // A relative path is taken from the container's root, where runc resolves it too.
    ...(sc.masked_paths.length > 0 ? { maskedPaths: sc.masked_paths.map(fromRoot) } : {}),
    ...(sc.readonly_paths.length > 0 ? { readonlyPaths: sc.readonly_paths.map(fromRoot) } : {}),
    // network and ipc follow the pod (RunPodSandbox); only pid is per container.
    namespaces: {
      pid: PID_MODE[ns?.pid ?? 'POD'] ?? 'pod',
      ...(ns?.target_id ? { targetId: ns.target_id } : {}),
    },
    seccomp: seccomp(sc, f),
    ...apparmor(sc, f),
  };
}

/** The AppArmor profile: the `apparmor` SecurityProfile wins; else the deprecated string field. */
function apparmor(
  sc: LinuxContainerSecurityContext__Output,
  f: string,
): Pick<ContainerSecurityInput, 'apparmor'> {
  if (sc.apparmor) {
    const t = sc.apparmor.profile_type;
    const field = `${f}.apparmor`;
    if (t === 'Localhost')
      return { apparmor: { profileType: 'localhost', name: sc.apparmor.localhost_ref, field } };
    if (t === 'Unconfined') return { apparmor: { profileType: 'unconfined', field } };
    return { apparmor: { profileType: 'runtime-default', field } };
  }
  const p = sc.apparmor_profile;
  const field = `${f}.apparmor_profile`;
  if (p === '' || p === 'runtime/default')
    return p === '' ? {} : { apparmor: { profileType: 'runtime-default', field } };
  if (p === 'unconfined') return { apparmor: { profileType: 'unconfined', field } };
  if (p.startsWith('localhost/')) {
    return { apparmor: { profileType: 'localhost', name: p.slice('localhost/'.length), field } };
  }
  throw new InvalidArgumentError(field, `"${p}" is not runtime/default, unconfined or localhost/<name>`);
}

/**
 * Unset namespace options are the proto's zero values: the container shares the pod's PID
 * namespace (mode POD), as containerd and CRI-O read them. kubelet always sets them (CONTAINER
 * unless the pod shares its process namespace); critest's plain containers leave them out.
 */
const UNSET_SECURITY_CONTEXT: ContainerSecurityInput = { namespaces: { pid: 'pod' } };

function linux(
  l: LinuxContainerConfig__Output | null,
  resources: ContainerResourcesInput | undefined,
): ContainerSpecInput['linux'] {
  return {
    ...(resources ? { resources } : {}),
    securityContext: l?.security_context ? securityContext(l.security_context) : UNSET_SECURITY_CONTEXT,
  };
}

export function createContainer(
  sandboxes: SandboxManager,
): UnaryImpl<CreateContainerRequest__Output, CreateContainerResponse> {
  return async (req, scope) => {
    const sandboxId = requireId(req.pod_sandbox_id, 'pod_sandbox_id');
    const config = requireMessage(req.config, 'config');
    // Sizes, counts, characters and paths first: nothing below sees a malformed field.
    const { meta, image, resources } = checkContainerConfig(config, 'config');
    // sandbox_config repeats the pod's config: crisp reads the pod it recorded, never this copy.
    const name = meta.name;
    const requestedMounts = mounts(
      config.mounts,
      config.linux?.security_context?.privileged ?? false,
      sandboxes.recursiveReadOnlyMounts,
    );
    const usernsOptions = config.linux?.security_context?.namespace_options?.userns_options;
    const userns = usernsOptions
      ? (usernsFromCri(usernsOptions, 'config.linux.security_context.namespace_options.userns_options') ??
        null)
      : undefined;
    const id = await sandboxes.createContainer(
      sandboxId,
      {
        attempt: meta.attempt,
        image,
        logPath: config.log_path,
        ...(config.stop_signal === 'RUNTIME_DEFAULT' ? {} : { stopSignal: config.stop_signal }),
        criConfig: JSON.parse(JSON.stringify(config)) as JsonValue,
        imageMounts: requestedMounts.imageMounts,
        ...(userns === undefined ? {} : { userns }),
        spec: {
          name,
          command: config.command,
          args: config.args,
          workingDir: config.working_dir,
          envs: config.envs.map((e) => ({ key: e.key, value: e.value.toString('utf8') })),
          mounts: requestedMounts.mounts,
          devices: config.devices.map((d) => ({
            containerPath: d.container_path,
            hostPath: d.host_path,
            permissions: d.permissions,
          })),
          labels: config.labels,
          annotations: config.annotations,
          tty: config.tty,
          stdin: config.stdin,
          stdinOnce: config.stdin_once,
          linux: linux(config.linux, resources),
        },
      },
      scope.signal,
    );
    return { container_id: id };
  };
}
