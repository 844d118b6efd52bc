import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FailedPreconditionError } from '../errors.js';
import { requireAppArmorProfileLoaded } from './apparmor.js';

describe('requireAppArmorProfileLoaded', () => {
  let dir = '';
  let profiles = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'crisp-apparmor-'));
    profiles = join(dir, 'profiles');
    // The securityfs format: "<name> (<mode>)", names may hold spaces and slashes.
    await writeFile(
      profiles,
      'cri-containerd.apparmor.d (enforce)\n/usr/bin/man (complain)\nk8s web (enforce)\n',
    );
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('passes a loaded profile, whatever its mode', async () => {
    await requireAppArmorProfileLoaded('cri-containerd.apparmor.d', 'f', profiles);
    await requireAppArmorProfileLoaded('/usr/bin/man', 'f', profiles);
    await requireAppArmorProfileLoaded('k8s web', 'f', profiles);
  });

  it('refuses a profile that is not loaded, naming it and the field', async () => {
    await assert.rejects(
      requireAppArmorProfileLoaded(
        'non-existent-profile',
        'config.linux.security_context.apparmor',
        profiles,
      ),
      (err: unknown) =>
        err instanceof FailedPreconditionError &&
        /"non-existent-profile" \(config\.linux\.security_context\.apparmor\) is not loaded/.test(
          err.message,
        ),
    );
    // A prefix of a loaded name is not that name.
    await assert.rejects(requireAppArmorProfileLoaded('k8s', 'f', profiles), FailedPreconditionError);
  });

  it('refuses when the list cannot be read', async () => {
    await assert.rejects(
      requireAppArmorProfileLoaded('web', 'f', join(dir, 'missing')),
      (err: unknown) => err instanceof FailedPreconditionError && /ENOENT/.test(err.message),
    );
  });
});
