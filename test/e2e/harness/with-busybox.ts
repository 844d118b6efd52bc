/**
 * The usual set-up of a pod test: a real registry serving the project's busybox image, a
 * crisp daemon told (through registries.conf) to reach it over plain HTTP, a CRI client, the
 * image pulled. `teardown` removes every pod crisp still has (containers outlive crisp by
 * design), then stops everything and removes the dirs.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connectCri, type CriClients } from './cri-client.js';
import {
  makeTestDirs,
  removeTestDirs,
  startCrisp,
  type RunningCrisp,
  type TestConfigOptions,
  type TestDirs,
} from './daemon.js';
import { startRegistry, type TestRegistry } from './registry.js';
import { busyboxImage } from './test-images.js';

export interface BusyboxSetup {
  registry: TestRegistry;
  crisp: RunningCrisp;
  dirs: TestDirs;
  cri: CriClients;
  /** The pulled busybox reference. */
  image: string;
  teardown(): Promise<void>;
}

/** `extraToml` goes before the [image] table the set-up writes; `opts` are startCrisp's. */
export async function startWithBusybox(
  extraToml = '',
  opts: Omit<TestConfigOptions, 'extraToml'> = {},
): Promise<BusyboxSetup> {
  const registry = await startRegistry();
  await registry.push('library/busybox', '1.0', await busyboxImage());
  const image = `${registry.host}/library/busybox:1.0`;
  const dirs = await makeTestDirs();
  const registriesConf = join(dirs.base, 'registries.conf');
  await writeFile(registriesConf, `[[registry]]\nlocation = "${registry.host}"\ninsecure = true\n`);
  const crisp = await startCrisp(dirs, {
    ...opts,
    extraToml: [extraToml, '[image]', `registries_config = ${JSON.stringify(registriesConf)}`].join('\n'),
  });
  const cri = await connectCri(dirs.socket);
  await cri.image.PullImage({ image: { image } }, 60_000);
  const setup: BusyboxSetup = {
    registry,
    crisp,
    dirs,
    cri,
    image,
    teardown: async () => {
      for (const p of (await setup.cri.runtime.ListPodSandbox({})).items) {
        await setup.cri.runtime.RemovePodSandbox({ pod_sandbox_id: p.id }, 120_000).catch(() => undefined);
      }
      setup.cri.close();
      await setup.crisp.stop();
      await registry.stop();
      await removeTestDirs(dirs);
    },
  };
  return setup;
}
