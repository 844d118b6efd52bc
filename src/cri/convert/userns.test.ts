import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from '../../errors.js';
import { usernsFromCri } from './userns.js';

const F = 'config.linux.security_context.namespace_options.userns_options';
const map = (container_id: number, host_id: number, length: number) => ({ container_id, host_id, length });

describe('usernsFromCri', () => {
  it('maps POD to the id maps and NODE or unset to the host namespace', () => {
    assert.deepEqual(
      usernsFromCri({ mode: 'POD', uids: [map(0, 100000, 65536)], gids: [map(0, 200000, 65536)] }, F),
      {
        uids: [{ containerId: 0, hostId: 100000, size: 65536 }],
        gids: [{ containerId: 0, hostId: 200000, size: 65536 }],
      },
    );
    assert.equal(usernsFromCri({ mode: 'NODE', uids: [], gids: [] }, F), undefined);
    assert.equal(usernsFromCri(null, F), undefined);
  });

  it('refuses what it cannot honour, naming the field', () => {
    const cases: [Parameters<typeof usernsFromCri>[0], string, RegExp][] = [
      [{ mode: 'CONTAINER', uids: [map(0, 1, 1)], gids: [map(0, 1, 1)] }, `${F}.mode`, /CONTAINER/],
      [{ mode: 'TARGET', uids: [], gids: [] }, `${F}.mode`, /TARGET/],
      [{ mode: 'NODE', uids: [map(0, 1, 1)], gids: [] }, `${F}.mode`, /no uid\/gid mappings/],
      [{ mode: 'POD', uids: [], gids: [map(0, 1, 1)] }, `${F}.uids`, /at least one mapping/],
      [{ mode: 'POD', uids: [map(0, 1, 1)], gids: [map(0, 1, 0)] }, `${F}.gids[0]`, /length 0/],
      [{ mode: 'POD', uids: [map(0, 2 ** 32 - 10, 100)], gids: [map(0, 1, 1)] }, `${F}.uids[0]`, /32-bit/],
      [
        { mode: 'POD', uids: [map(0, 100, 10), map(5, 500, 10)], gids: [map(0, 1, 1)] },
        `${F}.uids`,
        /container_id ranges overlap/,
      ],
      [
        { mode: 'POD', uids: [map(0, 100, 10), map(20, 105, 10)], gids: [map(0, 1, 1)] },
        `${F}.uids`,
        /host_id ranges overlap/,
      ],
    ];
    for (const [opts, field, message] of cases) {
      assert.throws(
        () => usernsFromCri(opts, F),
        (err: unknown) =>
          err instanceof InvalidArgumentError && err.field === field && message.test(err.message),
        field,
      );
    }
  });
});
