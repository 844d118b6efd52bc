/**
 * Request checks for whole CRI messages: every size, count and character limit of limits.ts
 * applied to the fields of a pod config, a container config, a filter or a pull, with the proto
 * path of the field in each refusal. The RPC files call these first, so a refused request never
 * reaches an engine. Rules that need the node or an object's state stay in the engines.
 */
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import type { AuthConfig__Output } from '../generated/runtime/v1/AuthConfig.js';
import type { ContainerConfig__Output } from '../generated/runtime/v1/ContainerConfig.js';
import type { ContainerMetadata__Output } from '../generated/runtime/v1/ContainerMetadata.js';
import type { PodSandboxMetadata__Output } from '../generated/runtime/v1/PodSandboxMetadata.js';
import type { ContainerResourcesInput } from '../container/spec-types.js';
import type { ImageSpec__Output } from '../generated/runtime/v1/ImageSpec.js';
import type { LinuxContainerSecurityContext__Output } from '../generated/runtime/v1/LinuxContainerSecurityContext.js';
import type { LinuxSandboxSecurityContext__Output } from '../generated/runtime/v1/LinuxSandboxSecurityContext.js';
import type { PodSandboxConfig__Output } from '../generated/runtime/v1/PodSandboxConfig.js';
import type { SecurityProfile__Output } from '../generated/runtime/v1/SecurityProfile.js';
import { isImageId, parseReference } from '../image/reference.js';
import { checkHostname } from '../sandbox/pod-files.js';
import { resourcesFromCri } from './convert/resources.js';
import { requireMessage, requireString } from './validate.js';
import {
  LIMITS,
  checkAnnotations,
  checkArgvEnv,
  checkCount,
  checkLabels,
  checkNoNul,
  checkPath,
  checkPrintable,
  checkStringMap,
  requireImageSpec,
  checkMetadataName,
  checkText,
  shown,
} from './limits.js';

/** Entries of the other repeated fields of a config (mounts, devices, ports, paths, ...). */
const LIST_ENTRIES = LIMITS.mountEntries;
/** Supplementary groups: the kernel's NGROUPS_MAX. */
const GROUPS_MAX = 65_536;
/** Short words: capability names, SELinux parts, profile types, runtime handler names. */
const WORD_BYTES = 256;

function checkSecurityProfile(p: SecurityProfile__Output | null, field: string): void {
  if (p) checkPath(p.localhost_ref, `${field}.localhost_ref`);
}

function checkSelinuxAndIds(
  sc: LinuxSandboxSecurityContext__Output | LinuxContainerSecurityContext__Output,
  f: string,
): void {
  const se = sc.selinux_options;
  if (se) {
    for (const part of ['user', 'role', 'type', 'level'] as const) {
      checkText(se[part], `${f}.selinux_options.${part}`, WORD_BYTES);
    }
  }
  checkCount(sc.supplemental_groups, `${f}.supplemental_groups`, GROUPS_MAX);
  checkPath(sc.seccomp_profile_path, `${f}.seccomp_profile_path`);
  checkSecurityProfile(sc.seccomp, `${f}.seccomp`);
  checkSecurityProfile(sc.apparmor, `${f}.apparmor`);
  const ns = sc.namespace_options;
  if (ns) {
    const u = ns.userns_options;
    if (u) {
      checkCount(u.uids, `${f}.namespace_options.userns_options.uids`, LIST_ENTRIES);
      checkCount(u.gids, `${f}.namespace_options.userns_options.gids`, LIST_ENTRIES);
    }
  }
}

/**
 * RunPodSandbox's PodSandboxConfig; returns the metadata it checked. (PullImage's and
 * CreateContainer's sandbox_config are hints crisp does not read, and are not checked.)
 */
export function checkPodSandboxConfig(
  config: PodSandboxConfig__Output,
  f: string,
): PodSandboxMetadata__Output {
  const meta = requireMessage(config.metadata, `${f}.metadata`);
  checkMetadataName(meta.name, `${f}.metadata.name`, { required: true, cniArgs: true });
  checkMetadataName(meta.namespace, `${f}.metadata.namespace`, { required: false, cniArgs: true });
  checkMetadataName(meta.uid, `${f}.metadata.uid`, { required: false, cniArgs: true });
  // '' is the node's name or the pod id's first 12 digits (sandbox/pod-files.ts podHostname).
  checkText(config.hostname, `${f}.hostname`, LIMITS.metadataBytes);
  if (config.hostname !== '') checkHostname(config.hostname, false, `${f}.hostname`);
  checkPath(config.log_directory, `${f}.log_directory`, { absolute: true });
  const dns = config.dns_config;
  if (dns) {
    for (const list of ['servers', 'searches', 'options'] as const) {
      checkCount(dns[list], `${f}.dns_config.${list}`, LIST_ENTRIES);
      dns[list].forEach((s, i) => checkText(s, `${f}.dns_config.${list}[${i}]`, WORD_BYTES));
    }
  }
  checkCount(config.port_mappings, `${f}.port_mappings`, LIST_ENTRIES);
  const hostNetwork = config.linux?.security_context?.namespace_options?.network === 'NODE';
  config.port_mappings.forEach((m, i) => {
    // Only a mapping with a host port reaches CNI's portmap (never for a host-network pod), whose
    // iptables rules need an address.
    if (m.host_port !== 0 && !hostNetwork && m.host_ip !== '' && isIP(m.host_ip) === 0) {
      throw new InvalidArgumentError(
        `${f}.port_mappings[${i}].host_ip`,
        `${shown(m.host_ip)} is not an IP address`,
      );
    }
  });
  checkLabels(config.labels, `${f}.labels`);
  checkAnnotations(config.annotations, `${f}.annotations`);
  const linux = config.linux;
  if (linux) {
    checkPath(linux.cgroup_parent, `${f}.linux.cgroup_parent`);
    checkStringMap(linux.sysctls, `${f}.linux.sysctls`);
    if (linux.security_context) checkSelinuxAndIds(linux.security_context, `${f}.linux.security_context`);
    if (linux.overhead) resourcesFromCri(linux.overhead, `${f}.linux.overhead`);
    if (linux.resources) resourcesFromCri(linux.resources, `${f}.linux.resources`);
  }
  return meta;
}

/**
 * An image as a client names it: an id, an id prefix (hex), or a reference by the image engine's
 * grammar (which refuses "..", upper case, empty components and the like); refusals name `field`.
 */
function checkImageName(spec: string, field: string): string {
  requireImageSpec(spec, field);
  if (isImageId(spec) || /^(?:sha256:)?[0-9a-f]+$/.test(spec)) return spec;
  parseReference(spec, field);
  return spec;
}

/**
 * An ImageSpec's image (required) and annotations. With `lookup` (ImageStatus, RemoveImage) every
 * name is taken, and one that is no reference or id simply names no image, as containerd and
 * CRI-O answer; otherwise (PullImage, CreateContainer) it must be a reference or an id.
 */
export function checkImageSpec(
  value: ImageSpec__Output | null,
  field: string,
  opts: { lookup?: boolean } = {},
): string {
  const spec = requireMessage(value, field);
  checkAnnotations(spec.annotations, `${field}.annotations`);
  checkText(spec.user_specified_image, `${field}.user_specified_image`, LIMITS.imageRefBytes);
  checkText(spec.runtime_handler, `${field}.runtime_handler`, WORD_BYTES);
  if (opts.lookup === true)
    return checkText(requireString(spec.image, `${field}.image`), `${field}.image`, LIMITS.imageRefBytes);
  return checkImageName(spec.image, `${field}.image`);
}

/** What checkContainerConfig has checked, for the caller to use rather than convert again. */
export interface CheckedContainerConfig {
  meta: ContainerMetadata__Output;
  image: string;
  resources: ContainerResourcesInput | undefined;
}

/** A ContainerConfig (CreateContainer's config). */
export function checkContainerConfig(config: ContainerConfig__Output, f: string): CheckedContainerConfig {
  const meta = requireMessage(config.metadata, `${f}.metadata`);
  checkMetadataName(meta.name, `${f}.metadata.name`, { required: true, cniArgs: false });
  const image = checkImageSpec(config.image, `${f}.image`);
  checkArgvEnv(
    [
      { list: config.command, field: `${f}.command` },
      { list: config.args, field: `${f}.args` },
    ],
    config.envs.map((e) => ({ key: e.key, value: e.value.toString('utf8') })),
    `${f}.envs`,
  );
  checkPath(config.working_dir, `${f}.working_dir`, { absolute: true });
  checkCount(config.mounts, `${f}.mounts`, LIST_ENTRIES);
  config.mounts.forEach((m, i) => {
    const mf = `${f}.mounts[${i}]`;
    if (m.container_path === '')
      throw new InvalidArgumentError(`${mf}.container_path`, 'required, got an empty string');
    checkPath(m.container_path, `${mf}.container_path`);
    checkPath(m.host_path, `${mf}.host_path`);
    checkPath(m.image_sub_path, `${mf}.image_sub_path`);
    if (m.image && m.image.image !== '') checkImageName(m.image.image, `${mf}.image.image`);
    checkCount(m.uidMappings, `${mf}.uidMappings`, LIST_ENTRIES);
    checkCount(m.gidMappings, `${mf}.gidMappings`, LIST_ENTRIES);
  });
  checkCount(config.devices, `${f}.devices`, LIST_ENTRIES);
  config.devices.forEach((d, i) => {
    checkPath(d.container_path, `${f}.devices[${i}].container_path`);
    checkPath(d.host_path, `${f}.devices[${i}].host_path`);
    checkText(d.permissions, `${f}.devices[${i}].permissions`, WORD_BYTES);
  });
  checkCount(config.CDI_devices, `${f}.CDI_devices`, LIST_ENTRIES);
  config.CDI_devices.forEach((d, i) => checkText(d.name, `${f}.CDI_devices[${i}].name`, WORD_BYTES));
  checkLabels(config.labels, `${f}.labels`);
  checkAnnotations(config.annotations, `${f}.annotations`);
  checkPath(config.log_path, `${f}.log_path`);
  const linux = config.linux;
  const resources = linux?.resources ? resourcesFromCri(linux.resources, `${f}.linux.resources`) : undefined;
  if (linux) {
    const sc = linux.security_context;
    if (sc) {
      const sf = `${f}.linux.security_context`;
      checkSelinuxAndIds(sc, sf);
      checkText(sc.run_as_username, `${sf}.run_as_username`, WORD_BYTES);
      checkNoNul(sc.apparmor_profile, `${sf}.apparmor_profile`, LIMITS.pathBytes);
      for (const list of ['masked_paths', 'readonly_paths'] as const) {
        checkCount(sc[list], `${sf}.${list}`, LIST_ENTRIES);
        sc[list].forEach((p, i) => checkPath(p, `${sf}.${list}[${i}]`));
      }
      const caps = sc.capabilities;
      if (caps) {
        for (const list of ['add_capabilities', 'drop_capabilities', 'add_ambient_capabilities'] as const) {
          checkCount(caps[list], `${sf}.capabilities.${list}`, LIST_ENTRIES);
          caps[list].forEach((c, i) => checkText(c, `${sf}.capabilities.${list}[${i}]`, WORD_BYTES));
        }
      }
    }
  }
  return { meta, image, resources };
}

/**
 * A List*, Stream* or stats filter: its label selector is bounded as labels are. Ids are not
 * checked: one that is no crisp id matches nothing.
 */
export function checkFilter(
  filter: { label_selector: Readonly<Record<string, string>> } | null,
  f = 'filter',
): void {
  if (filter) checkLabels(filter.label_selector, `${f}.label_selector`);
}

/** PullImage's credentials: each field bounded (tokens are a few KiB), no control characters. */
export function checkAuth(auth: AuthConfig__Output | null, f = 'auth'): void {
  if (!auth) return;
  for (const key of [
    'username',
    'password',
    'auth',
    'server_address',
    'identity_token',
    'registry_token',
  ] as const) {
    checkPrintable(auth[key], `${f}.${key}`, LIMITS.textBytes);
  }
}

/** argv of an exec (ExecSync, Exec): required, bounded as a process's argv is. */
export function checkCmd(cmd: readonly string[], field = 'cmd'): void {
  if (cmd.length === 0) throw new InvalidArgumentError(field, 'required, got an empty command');
  checkArgvEnv([{ list: cmd, field }]);
}
