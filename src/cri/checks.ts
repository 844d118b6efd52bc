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
import type { ContainerFilter__Output } from '../generated/runtime/v1/ContainerFilter.js';
import type { ContainerStatsFilter__Output } from '../generated/runtime/v1/ContainerStatsFilter.js';
import type { ImageSpec__Output } from '../generated/runtime/v1/ImageSpec.js';
import type { LinuxContainerSecurityContext__Output } from '../generated/runtime/v1/LinuxContainerSecurityContext.js';
import type { LinuxSandboxSecurityContext__Output } from '../generated/runtime/v1/LinuxSandboxSecurityContext.js';
import type { PodSandboxConfig__Output } from '../generated/runtime/v1/PodSandboxConfig.js';
import type { PodSandboxFilter__Output } from '../generated/runtime/v1/PodSandboxFilter.js';
import type { PodSandboxStatsFilter__Output } from '../generated/runtime/v1/PodSandboxStatsFilter.js';
import type { SecurityProfile__Output } from '../generated/runtime/v1/SecurityProfile.js';
import { isImageId, parseReference } from '../image/reference.js';
import { checkHostname, renderResolvConf } from '../sandbox/pod-files.js';
import { resourcesFromCri } from './convert/resources.js';
import { requireMessage } from './validate.js';
import {
  LIMITS,
  checkAnnotations,
  checkArgvEnv,
  checkCount,
  checkId,
  checkLabels,
  checkNoNul,
  checkPath,
  checkPrintable,
  checkStringMap,
  requireImageSpec,
  requireMetadataName,
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
      checkPrintable(se[part], `${f}.selinux_options.${part}`, WORD_BYTES);
    }
  }
  checkCount(sc.supplemental_groups, `${f}.supplemental_groups`, GROUPS_MAX);
  checkPath(sc.seccomp_profile_path, `${f}.seccomp_profile_path`);
  checkSecurityProfile(sc.seccomp, `${f}.seccomp`);
  checkSecurityProfile(sc.apparmor, `${f}.apparmor`);
  const ns = sc.namespace_options;
  if (ns) {
    checkId(ns.target_id, `${f}.namespace_options.target_id`);
    const u = ns.userns_options;
    if (u) {
      checkCount(u.uids, `${f}.namespace_options.userns_options.uids`, LIST_ENTRIES);
      checkCount(u.gids, `${f}.namespace_options.userns_options.gids`, LIST_ENTRIES);
    }
  }
}

/**
 * A PodSandboxConfig (RunPodSandbox's config; PullImage's and CreateContainer's sandbox_config);
 * returns the metadata it checked.
 */
export function checkPodSandboxConfig(
  config: PodSandboxConfig__Output,
  f: string,
): PodSandboxMetadata__Output {
  const meta = requireMessage(config.metadata, `${f}.metadata`);
  requireMetadataName(meta.name, `${f}.metadata.name`);
  requireMetadataName(meta.namespace, `${f}.metadata.namespace`);
  requireMetadataName(meta.uid, `${f}.metadata.uid`);
  const hostNetwork = config.linux?.security_context?.namespace_options?.network === 'NODE';
  checkPrintable(config.hostname, `${f}.hostname`, LIMITS.metadataBytes);
  // As RunPodSandbox will use it: the pod's name when no hostname is given.
  if (config.hostname !== '' || !hostNetwork) {
    try {
      checkHostname(config.hostname === '' ? meta.name : config.hostname, hostNetwork);
    } catch (err) {
      if (!(err instanceof InvalidArgumentError)) throw err;
      throw new InvalidArgumentError(
        `${f}.hostname`,
        `${shown(config.hostname === '' ? meta.name : config.hostname)} is not an RFC 1123 host name of at most 64 characters${config.hostname === '' ? ' (the pod name is used when hostname is empty)' : ''}`,
      );
    }
  }
  checkPath(config.log_directory, `${f}.log_directory`, { absolute: true });
  const dns = config.dns_config;
  if (dns) {
    for (const list of ['servers', 'searches', 'options'] as const) {
      checkCount(dns[list], `${f}.dns_config.${list}`, LIST_ENTRIES);
      dns[list].forEach((s, i) => checkPrintable(s, `${f}.dns_config.${list}[${i}]`, WORD_BYTES));
    }
    renderResolvConf(dns, `${f}.dns_config`);
  }
  checkCount(config.port_mappings, `${f}.port_mappings`, LIST_ENTRIES);
  config.port_mappings.forEach((m, i) => {
    if (m.host_ip !== '' && isIP(m.host_ip) === 0) {
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

/** An ImageSpec's image (required) and annotations. */
export function checkImageSpec(value: ImageSpec__Output | null, field: string): string {
  const spec = requireMessage(value, field);
  checkAnnotations(spec.annotations, `${field}.annotations`);
  checkPrintable(spec.user_specified_image, `${field}.user_specified_image`, LIMITS.imageRefBytes);
  checkPrintable(spec.runtime_handler, `${field}.runtime_handler`, WORD_BYTES);
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
  requireMetadataName(meta.name, `${f}.metadata.name`);
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
    checkPath(m.container_path, `${mf}.container_path`, { absolute: true });
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
    checkPrintable(d.permissions, `${f}.devices[${i}].permissions`, WORD_BYTES);
  });
  checkCount(config.CDI_devices, `${f}.CDI_devices`, LIST_ENTRIES);
  config.CDI_devices.forEach((d, i) => checkPrintable(d.name, `${f}.CDI_devices[${i}].name`, WORD_BYTES));
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
      checkPrintable(sc.run_as_username, `${sf}.run_as_username`, WORD_BYTES);
      checkNoNul(sc.apparmor_profile, `${sf}.apparmor_profile`, LIMITS.pathBytes);
      for (const list of ['masked_paths', 'readonly_paths'] as const) {
        checkCount(sc[list], `${sf}.${list}`, LIST_ENTRIES);
        sc[list].forEach((p, i) => checkPath(p, `${sf}.${list}[${i}]`, { absolute: true }));
      }
      const caps = sc.capabilities;
      if (caps) {
        for (const list of ['add_capabilities', 'drop_capabilities', 'add_ambient_capabilities'] as const) {
          checkCount(caps[list], `${sf}.capabilities.${list}`, LIST_ENTRIES);
          caps[list].forEach((c, i) => checkPrintable(c, `${sf}.capabilities.${list}[${i}]`, WORD_BYTES));
        }
      }
    }
  }
  return { meta, image, resources };
}

/** ListContainers' and StreamContainers' filter. */
export function checkContainerFilter(filter: ContainerFilter__Output | null, f = 'filter'): void {
  if (!filter) return;
  checkId(filter.id, `${f}.id`);
  checkId(filter.pod_sandbox_id, `${f}.pod_sandbox_id`);
  checkLabels(filter.label_selector, `${f}.label_selector`);
}

/** ListPodSandbox's and StreamPodSandboxes' filter. */
export function checkPodSandboxFilter(filter: PodSandboxFilter__Output | null, f = 'filter'): void {
  if (!filter) return;
  checkId(filter.id, `${f}.id`);
  checkLabels(filter.label_selector, `${f}.label_selector`);
}

/** The stats RPCs' filters. */
export function checkStatsFilter(
  filter: ContainerStatsFilter__Output | PodSandboxStatsFilter__Output | null,
  f = 'filter',
): void {
  if (!filter) return;
  checkId(filter.id, `${f}.id`);
  if ('pod_sandbox_id' in filter) checkId(filter.pod_sandbox_id, `${f}.pod_sandbox_id`);
  checkLabels(filter.label_selector, `${f}.label_selector`);
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
