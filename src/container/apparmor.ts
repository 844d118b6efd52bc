/**
 * The node-side check of a container's AppArmor profile, made before its spec is built: a named
 * (localhost) profile must be loaded, or CreateContainer is refused, as containerd refuses it.
 * What the spec gets is spec.ts apparmorProfile's rule.
 */
import { requireAppArmorProfileLoaded } from '../oci/apparmor.js';
import type { ContainerSecurityInput } from './spec-types.js';

export async function checkAppArmorProfile(
  security: ContainerSecurityInput | undefined,
  enabled: boolean,
): Promise<void> {
  const a = security?.apparmor;
  // Without AppArmor, or for a privileged container, apparmorProfile decides (refuse or none).
  if (!enabled || a?.profileType !== 'localhost' || security?.privileged === true) return;
  if (a.name === undefined || a.name === '') return;
  await requireAppArmorProfileLoaded(a.name, a.field);
}
