import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import {
  parseGroup,
  parsePasswd,
  requestedUser,
  resolveInRoot,
  resolveUser,
  type UserRequest,
} from './user.js';

const PASSWD = `# comment
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin

app:x:1000:1000:The App, Inc.:/home/app:/bin/sh
+nis::::::
broken:x:notanumber:1::/:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`;

const GROUP = `root:x:0:
daemon:x:1:
wheel:x:10:root,app
audio:x:29: app , other
app:x:1000:app
staff:x:50:
nogroup:x:65534:
`;

let root: string;
let bare: string;

function image(user: string, ref = 'example.test/app:1') {
  return { ref, run: { user } };
}

async function resolve(request: UserRequest, user = '', rootfs = root) {
  return resolveUser(rootfs, request, image(user));
}

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'crisp-user-'));
  await mkdir(path.join(root, 'etc'));
  await writeFile(path.join(root, 'etc/passwd'), PASSWD);
  await writeFile(path.join(root, 'etc/group'), GROUP);
  bare = await mkdtemp(path.join(tmpdir(), 'crisp-user-bare-'));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(bare, { recursive: true, force: true });
});

describe('parsePasswd / parseGroup', () => {
  it('skips comments, blank, NIS and malformed lines', () => {
    assert.deepEqual(
      parsePasswd(PASSWD).map((e) => e.name),
      ['root', 'daemon', 'app', 'nobody'],
    );
    assert.deepEqual(parsePasswd(PASSWD)[2], { name: 'app', uid: 1000, gid: 1000 });
  });

  it('parses group members, trimming spaces', () => {
    const audio = parseGroup(GROUP).find((g) => g.name === 'audio');
    assert.deepEqual(audio, { name: 'audio', gid: 29, members: ['app', 'other'] });
    assert.deepEqual(parseGroup(GROUP).find((g) => g.name === 'staff')?.members, []);
  });
});

describe('requestedUser', () => {
  it('builds containerd-style user strings', () => {
    assert.equal(requestedUser({}), undefined);
    assert.equal(requestedUser({ runAsUser: 5 }), '5');
    assert.equal(requestedUser({ runAsUser: 5, runAsGroup: 6 }), '5:6');
    assert.equal(requestedUser({ runAsUser: 5, runAsUsername: 'app' }), 'app');
    assert.equal(requestedUser({ runAsUsername: 'app', runAsGroup: 0 }), 'app:0');
  });

  it('rejects run_as_group without a user, and bad ids', () => {
    assert.throws(
      () => requestedUser({ runAsGroup: 5 }),
      (err: unknown) =>
        err instanceof InvalidArgumentError && err.field === 'config.linux.security_context.run_as_group',
    );
    assert.throws(() => requestedUser({ runAsUser: -1 }), InvalidArgumentError);
    assert.throws(() => requestedUser({ runAsUser: 1.5 }), InvalidArgumentError);
    assert.throws(() => requestedUser({ runAsUser: 2 ** 32 }), InvalidArgumentError);
  });
});

describe('resolveUser', () => {
  it('defaults to root with root’s groups', async () => {
    assert.deepEqual(await resolve({}), { uid: 0, gid: 0, additionalGids: [0, 10] });
  });

  it('resolves a numeric image user through passwd', async () => {
    assert.deepEqual(await resolve({}, '1000'), { uid: 1000, gid: 1000, additionalGids: [1000, 10, 29] });
  });

  it('uses gid 0 for a numeric user missing from passwd', async () => {
    assert.deepEqual(await resolve({}, '4242'), { uid: 4242, gid: 0, additionalGids: [0] });
  });

  it('resolves uid:gid without lookups', async () => {
    assert.deepEqual(await resolve({}, '4242:77', bare), { uid: 4242, gid: 77, additionalGids: [77] });
  });

  it('resolves a name', async () => {
    assert.deepEqual(await resolve({}, 'app'), { uid: 1000, gid: 1000, additionalGids: [1000, 10, 29] });
  });

  it('resolves name:group and uid:group', async () => {
    assert.deepEqual(await resolve({}, 'app:staff'), {
      uid: 1000,
      gid: 50,
      additionalGids: [50, 10, 29, 1000],
    });
    assert.deepEqual(await resolve({}, '1:staff'), { uid: 1, gid: 50, additionalGids: [50] });
    assert.deepEqual(await resolve({}, 'daemon:7'), { uid: 1, gid: 7, additionalGids: [7] });
  });

  it('lets run_as_user (and run_as_group) win over the image user', async () => {
    assert.deepEqual(await resolve({ runAsUser: 65534 }, 'app'), {
      uid: 65534,
      gid: 65534,
      additionalGids: [65534],
    });
    assert.deepEqual(await resolve({ runAsUser: 1000, runAsGroup: 3000 }, 'daemon'), {
      uid: 1000,
      gid: 3000,
      additionalGids: [3000, 10, 29, 1000],
    });
  });

  it('lets run_as_username win over run_as_user', async () => {
    assert.deepEqual(await resolve({ runAsUsername: 'app', runAsUser: 5 }), {
      uid: 1000,
      gid: 1000,
      additionalGids: [1000, 10, 29],
    });
  });

  it('appends supplemental groups, without duplicates', async () => {
    assert.deepEqual(await resolve({ runAsUser: 1000, supplementalGroups: [2000, 10, 2001] }), {
      uid: 1000,
      gid: 1000,
      additionalGids: [1000, 10, 29, 2000, 2001],
    });
    assert.deepEqual(await resolve({ supplementalGroups: [5] }, '', bare), {
      uid: 0,
      gid: 0,
      additionalGids: [0, 5],
    });
  });

  it('leaves out the /etc/group groups with the Strict policy, keeping the primary gid', async () => {
    const strict = { supplementalGroupsPolicy: 'strict' } as const;
    assert.deepEqual(await resolve({ ...strict, runAsUsername: 'app', supplementalGroups: [2000, 1000] }), {
      uid: 1000,
      gid: 1000,
      additionalGids: [1000, 2000],
    });
    assert.deepEqual(await resolve(strict, 'app'), { uid: 1000, gid: 1000, additionalGids: [1000] });
    assert.deepEqual(
      await resolve({ supplementalGroupsPolicy: 'merge', runAsUsername: 'app' }),
      await resolve({ runAsUsername: 'app' }),
      'merge is the default',
    );
  });

  it('fails with FailedPrecondition naming a missing user and the image', async () => {
    await assert.rejects(resolve({ runAsUsername: 'ghost' }), (err: unknown) => {
      assert.ok(err instanceof FailedPreconditionError);
      assert.match(err.message, /"ghost"/);
      assert.match(err.message, /example\.test\/app:1/);
      assert.match(err.message, /security context/);
      return true;
    });
    await assert.rejects(resolve({}, 'ghost'), /user "ghost" \(from the image's User\) not found/);
    await assert.rejects(resolve({}, 'app', bare), FailedPreconditionError);
  });

  it('fails with FailedPrecondition for a missing group', async () => {
    await assert.rejects(resolve({}, 'app:ghosts'), /group "ghosts" .* not found in \/etc\/group/);
  });

  it('follows symlinks inside the rootfs only', async () => {
    const linked = await mkdtemp(path.join(tmpdir(), 'crisp-user-link-'));
    try {
      await mkdir(path.join(linked, 'etc'));
      await mkdir(path.join(linked, 'data'));
      await writeFile(path.join(linked, 'data/passwd'), 'svc:x:777:778::/:/bin/sh\n');
      // An absolute target is relative to the rootfs, not the host.
      await symlink('/data/passwd', path.join(linked, 'etc/passwd'));
      // `..` cannot climb out: this names <rootfs>/etc/group-real, which does not exist.
      await symlink('../../../../../../etc/group-real', path.join(linked, 'etc/group'));
      assert.deepEqual(await resolve({}, 'svc', linked), { uid: 777, gid: 778, additionalGids: [778] });
      assert.equal(await resolveInRoot(linked, '/etc/group'), path.join(linked, 'etc/group-real'));
    } finally {
      await rm(linked, { recursive: true, force: true });
    }
  });

  it('refuses a passwd that is not a regular file', async () => {
    const odd = await mkdtemp(path.join(tmpdir(), 'crisp-user-odd-'));
    try {
      await mkdir(path.join(odd, 'etc/passwd'), { recursive: true });
      await assert.rejects(resolve({}, '', odd), /cannot read \/etc\/passwd/);
    } finally {
      await rm(odd, { recursive: true, force: true });
    }
  });
});
