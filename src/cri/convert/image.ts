/** Pure conversions between image records and CRI image messages. */
import type { Image } from '../../generated/runtime/v1/Image.js';
import type { AuthConfig__Output } from '../../generated/runtime/v1/AuthConfig.js';
import type { AuthConfigInput } from '../../image/types.js';
import type { StoredImage as ImageRecord } from '../../image/service.js';

/** The image config's User, as CRI wants it: a numeric uid, or else a user name (group dropped). */
export function imageUser(user: string): { uid?: { value: string }; username: string } {
  const name = user.split(':')[0] ?? '';
  if (name === '') return { username: '' };
  if (/^[0-9]+$/.test(name)) return { uid: { value: name }, username: '' };
  return { username: name };
}

export function toCriImage(record: ImageRecord): Image {
  return {
    id: record.id,
    repo_tags: [...record.repoTags],
    repo_digests: [...record.repoDigests],
    size: record.size,
    ...imageUser(record.run.user),
    spec: { image: record.id, annotations: {} },
    pinned: record.pinned,
  };
}

/** ImageStatus verbose info: what `crictl inspecti` shows beyond the Image message. */
export function imageVerboseInfo(record: ImageRecord, layerDirs: string[]): Record<string, string> {
  return {
    info: JSON.stringify({
      id: record.id,
      os: record.os,
      architecture: record.architecture,
      config: record.run,
      layers: record.layers,
      /** The unpacked layers, top first: an overlay lowerdir for this image. */
      layerDirs,
      pinned: record.pinned,
      createdAt: record.createdAt,
    }),
  };
}

export function toAuthConfigInput(auth: AuthConfig__Output | null): AuthConfigInput | undefined {
  if (!auth) return undefined;
  return {
    username: auth.username,
    password: auth.password,
    auth: auth.auth,
    serverAddress: auth.server_address,
    identityToken: auth.identity_token,
    registryToken: auth.registry_token,
  };
}
