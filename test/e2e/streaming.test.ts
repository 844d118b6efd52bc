/**
 * Exec, Attach and PortForward through crisp's streaming server, with the project's own client
 * speaking SPDY/3.1 and WebSocket the way client-go (crictl, kubelet's API-server proxy) does.
 * Real conmon, runc, busybox containers and a busybox httpd inside a pod; checks look at what the
 * client receives and at the processes left on the node.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status as GrpcCode } from '@grpc/grpc-js';
import { processArgv } from '../../src/util/proc.js';
import { createAndStart, rejection, type CriClients } from './harness/cri-client.js';
import { processesMentioning, sleep, until } from './harness/host.js';
import {
  channelBytes,
  isRefusal,
  openStream,
  spdyExec,
  spdyForwardOnce,
  spdyUpgrade,
  wsConnect,
} from './harness/stream-client.js';
import { startWithBusybox, type BusyboxSetup } from './harness/with-busybox.js';

/** The children of a process, from /proc (conmon's exec sessions are the daemon's children). */
async function childrenOf(pid: number): Promise<{ pid: number; cmd: string }[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  const out: { pid: number; cmd: string }[] = [];
  for (const p of text.split(' ').filter((x) => x.trim() !== '')) {
    out.push({ pid: Number(p), cmd: ((await processArgv(Number(p))) ?? []).join(' ') });
  }
  return out;
}

/** Waits until `cond` holds (polling), failing with `what` after `ms`. */
function waitFor(what: string, cond: () => boolean | Promise<boolean>, ms = 15_000): Promise<true> {
  return until(what, async () => ((await cond()) ? true : undefined), ms);
}

describe('streaming: exec, attach and port-forward', { timeout: 240_000 }, () => {
  let setup: BusyboxSetup;
  let cri: CriClients;
  let podId: string;
  let podConfig: Record<string, unknown>;
  let shell: string; // a running container: sleep loop, stdin open
  let ticker: string; // prints "tick N" every 100 ms
  let echo: string; // `cat` on its stdin (attach with stdin)

  const ctr = async (
    name: string,
    command: string[],
    extra: Record<string, unknown> = {},
  ): Promise<string> => {
    return createAndStart(
      cri,
      { id: podId, config: podConfig },
      { metadata: { name }, image: { image: setup.image }, command, log_path: `${name}.log`, ...extra },
    );
  };

  const execUrl = async (
    containerId: string,
    cmd: string[],
    o: { tty?: boolean; stdin?: boolean; stderr?: boolean } = {},
  ) =>
    (
      await cri.runtime.Exec({
        container_id: containerId,
        cmd,
        tty: o.tty ?? false,
        stdin: o.stdin ?? false,
        stdout: true,
        stderr: o.stderr ?? !(o.tty ?? false),
      })
    ).url;

  before(async () => {
    setup = await startWithBusybox('[streaming]\ntoken_ttl_seconds = 2');
    cri = setup.cri;
    podConfig = {
      metadata: { name: 'streams', namespace: 'e2e-streaming', uid: 'uid-streams', attempt: 0 },
      hostname: 'streamhost',
      log_directory: join(setup.dirs.base, 'pod-logs'),
    };
    ({ pod_sandbox_id: podId } = await cri.runtime.RunPodSandbox({ config: podConfig }, 60_000));
    shell = await ctr('shell', ['sh', '-c', 'while true; do sleep 1; done'], { stdin: true });
    ticker = await ctr('ticker', [
      'sh',
      '-c',
      'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done',
    ]);
    echo = await ctr('echo', ['sh', '-c', 'while read l; do echo "got:$l"; done'], {
      stdin: true,
      stdin_once: false,
    });
    await ctr('web', [
      'sh',
      '-c',
      'mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 80 -h /www',
    ]);
  });

  after(async () => {
    await setup.teardown();
  });

  it('hands out URLs on the streaming server with a single-use token', async () => {
    const url = await execUrl(shell, ['true']);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]{16,}$/);
    const first = await spdyExec(url);
    assert.equal(first.exitCode, 0);
    const again = await spdyUpgrade(url, ['v4.channel.k8s.io']);
    assert.ok(isRefusal(again), 'a used token is refused');
    assert.equal(again.status, 404);
    await waitFor('the refusal in the log', () =>
      setup.crisp.logs.some((l) => l.msg === 'streaming token unknown, used or expired'),
    );
  });

  it('refuses an expired token (token_ttl_seconds = 2)', async () => {
    const url = await execUrl(shell, ['true']);
    await sleep(2_300);
    const late = await spdyUpgrade(url, ['v4.channel.k8s.io']);
    assert.ok(isRefusal(late));
    assert.equal(late.status, 404);
  });

  it('exec without tty: stdout and stderr apart, exit codes in the v4 Status', async () => {
    const ok = await spdyExec(await execUrl(shell, ['cat', '/etc/hostname']));
    assert.equal(ok.protocol, 'v4.channel.k8s.io');
    assert.equal(ok.stdout.toString(), 'streamhost\n');
    assert.deepEqual(JSON.parse(ok.errorStream), { metadata: {}, status: 'Success' });
    const bad = await spdyExec(await execUrl(shell, ['sh', '-c', 'echo out; echo err >&2; exit 3']));
    assert.equal(bad.stdout.toString(), 'out\n');
    assert.equal(bad.stderr.toString(), 'err\n');
    assert.equal(bad.exitCode, 3);
    const status = JSON.parse(bad.errorStream) as { reason: string; status: string };
    assert.equal(status.status, 'Failure');
    assert.equal(status.reason, 'NonZeroExitCode');
    const missing = await spdyExec(await execUrl(shell, ['/no/such/binary']));
    assert.notEqual(missing.exitCode, 0, `a missing binary fails: ${missing.errorStream}`);
  });

  it('older protocols: v2 reports a non-zero exit as text, nothing on success', async () => {
    const ok = await spdyExec(await execUrl(shell, ['true']), { protocols: ['v2.channel.k8s.io'] });
    assert.equal(ok.protocol, 'v2.channel.k8s.io');
    assert.equal(ok.errorStream, '');
    const bad = await spdyExec(await execUrl(shell, ['sh', '-c', 'exit 4']), {
      protocols: ['v2.channel.k8s.io'],
    });
    assert.match(bad.errorStream, /non-zero exit code.*4/);
  });

  it('stdin reaches the command and its end closes the command stdin', async () => {
    const res = await spdyExec(await execUrl(shell, ['cat'], { stdin: true }), {
      stdin: Buffer.from('hi\nthere\n'),
    });
    assert.equal(res.stdout.toString(), 'hi\nthere\n');
    assert.equal(res.exitCode, 0);
  });

  it('10 MB of output arrives intact', async () => {
    const url = await execUrl(shell, [
      'sh',
      '-c',
      'head -c 10485760 /dev/urandom > /tmp/big && md5sum /tmp/big',
    ]);
    const sum = (await spdyExec(url)).stdout.toString().split(' ')[0];
    const res = await spdyExec(await execUrl(shell, ['cat', '/tmp/big']), { timeoutMs: 120_000 });
    assert.equal(res.stdout.length, 10 * 1024 * 1024);
    assert.equal(createHash('md5').update(res.stdout).digest('hex'), sum);
    assert.equal(res.exitCode, 0);
  });

  it('exec with a tty: the first size is the pty size, a later resize shows in stty size', async () => {
    const first = await spdyExec(await execUrl(shell, ['stty', 'size'], { tty: true }), {
      tty: true,
      sizes: [{ Width: 101, Height: 33 }],
    });
    assert.equal(first.stdout.toString(), '33 101\r\n');
    let stdinEnd: () => void = () => undefined;
    const done = new Promise<void>((r) => (stdinEnd = r));
    const res = await spdyExec(await execUrl(shell, ['sh'], { tty: true, stdin: true }), {
      tty: true,
      sizes: [{ Width: 80, Height: 24 }],
      stdinDone: done,
      onOpen: ({ stdin, resize, stdout }) => {
        let seen = '';
        stdout?.on('data', (d: Buffer) => {
          seen += d.toString();
          if (seen.includes('24 80') && !seen.includes('SIZE2')) {
            resize?.write(`${JSON.stringify({ Width: 132, Height: 50 })}\n`);
            setTimeout(() => stdin?.write('echo SIZE2; stty size; exit 5\n'), 300);
          }
        });
        stdin?.write('stty size\n');
        void waitFor(
          'the second stty size',
          () => seen.includes('SIZE2') && /50 132/.test(seen),
          20_000,
        ).finally(stdinEnd);
      },
    });
    const out = res.stdout.toString();
    assert.match(out, /24 80/);
    assert.match(out, /50 132/, `the resize reached the pty: ${JSON.stringify(out)}`);
    assert.equal(res.exitCode, 5);
  });

  it('a client going away mid-exec leaves no process behind', async () => {
    const marker = `sleep 7${Math.floor(Math.random() * 1000)}`;
    const url = await execUrl(shell, ['sh', '-c', marker]);
    const up = await spdyUpgrade(url, ['v4.channel.k8s.io']);
    assert.ok(!isRefusal(up));
    const errS = await openStream(up.session, { streamType: 'error' });
    errS.end();
    await openStream(up.session, { streamType: 'stdout' });
    await openStream(up.session, { streamType: 'stderr' });
    await waitFor('the exec process', async () => (await processesMentioning(marker)).length > 0, 10_000);
    up.socket.destroy();
    await waitFor(
      'the exec process to go',
      async () => (await processesMentioning(marker)).length === 0,
      10_000,
    );
    await waitFor(
      'conmon to be reaped',
      async () => !(await childrenOf(setup.crisp.pid)).some((c) => c.cmd.includes('conmon')),
      10_000,
    );
  });

  it('attach reaches a running container and detaching leaves it running', async () => {
    const { url } = await cri.runtime.Attach({
      container_id: ticker,
      stdout: true,
      stderr: true,
      stdin: false,
      tty: false,
    });
    const up = await spdyUpgrade(url, ['v4.channel.k8s.io']);
    assert.ok(!isRefusal(up));
    const errS = await openStream(up.session, { streamType: 'error' });
    errS.end();
    const out = await openStream(up.session, { streamType: 'stdout' });
    await openStream(up.session, { streamType: 'stderr' });
    let seen = '';
    out.on('data', (d: Buffer) => (seen += d.toString()));
    await waitFor('three ticks', () => (seen.match(/tick \d+\n/g) ?? []).length >= 3, 10_000);
    up.socket.destroy();
    await sleep(500);
    const st = await cri.runtime.ContainerStatus({ container_id: ticker });
    assert.equal(st.status?.state, 'CONTAINER_RUNNING');
  });

  it('attach with stdin: input reaches the container, output comes back', async () => {
    const { url } = await cri.runtime.Attach({
      container_id: echo,
      stdout: true,
      stderr: true,
      stdin: true,
      tty: false,
    });
    const up = await spdyUpgrade(url, ['v4.channel.k8s.io']);
    assert.ok(!isRefusal(up));
    const errS = await openStream(up.session, { streamType: 'error' });
    errS.end();
    const stdin = await openStream(up.session, { streamType: 'stdin' });
    const out = await openStream(up.session, { streamType: 'stdout' });
    await openStream(up.session, { streamType: 'stderr' });
    let seen = '';
    out.on('data', (d: Buffer) => (seen += d.toString()));
    stdin.write('ping\n');
    await waitFor('the echoed line', () => seen.includes('got:ping'), 10_000);
    up.socket.destroy();
    await sleep(300);
    assert.equal(
      (await cri.runtime.ContainerStatus({ container_id: echo })).status?.state,
      'CONTAINER_RUNNING',
    );
  });

  it('port-forward: 20 parallel requests over one SPDY connection, a dead port fails alone', async () => {
    const { url } = await cri.runtime.PortForward({ pod_sandbox_id: podId, port: [80] });
    const up = await spdyUpgrade(url, ['portforward.k8s.io']);
    assert.ok(!isRefusal(up));
    assert.equal(up.protocol, 'portforward.k8s.io');
    const request = Buffer.from('GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n');
    const dead = spdyForwardOnce(up.session, 81, 1000, request);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => spdyForwardOnce(up.session, 80, i, request)),
    );
    for (const r of results) {
      assert.match(r.data.toString(), /^HTTP\/1\.[01] 200/);
      assert.match(r.data.toString(), /hello-from-pod/);
      assert.equal(r.error, '');
    }
    const failed = await dead;
    assert.match(failed.error, /port 81.*Connection refused/);
    // The connection still works after the failure.
    const later = await spdyForwardOnce(up.session, 80, 2000, request);
    assert.match(later.data.toString(), /hello-from-pod/);
    up.session.destroy();
  });

  it('WebSocket exec: v5 with the stdin CLOSE signal, and base64', async () => {
    const url = await execUrl(shell, ['cat'], { stdin: true });
    const s = await wsConnect(url, ['v5.channel.k8s.io']);
    assert.equal(s.protocol, 'v5.channel.k8s.io');
    s.send(0, 'over-ws\n');
    s.ws.send(Buffer.from([255, 0]));
    const closed = await s.closed;
    assert.equal(closed.code, 1000);
    assert.equal(channelBytes(s, 1).toString(), 'over-ws\n');
    assert.deepEqual(JSON.parse(channelBytes(s, 3).toString()), { metadata: {}, status: 'Success' });

    const b = await wsConnect(await execUrl(shell, ['sh', '-c', 'echo b64; exit 2']), [
      'v4.base64.channel.k8s.io',
    ]);
    await b.closed;
    assert.equal(channelBytes(b, 1).toString(), 'b64\n');
    assert.match(channelBytes(b, 3).toString(), /NonZeroExitCode/);

    // A terminal: the size sent on channel 4 right after the upgrade is the pty's from the start.
    const t = await wsConnect(await execUrl(shell, ['stty', 'size'], { tty: true }), ['v4.channel.k8s.io']);
    t.send(4, JSON.stringify({ Width: 90, Height: 30 }));
    await t.closed;
    assert.equal(channelBytes(t, 1).toString(), '30 90\r\n');
  });

  it('attach to a container with a terminal: resize goes through its ctl FIFO', async () => {
    const tty = await ctr('tty', ['sh', '-c', 'while true; do stty size; sleep 0.2; done'], {
      tty: true,
      stdin: true,
    });
    const { url } = await cri.runtime.Attach({ container_id: tty, stdout: true, stdin: true, tty: true });
    let seen = '';
    let resizeSent = false;
    const res = spdyExec(url, {
      tty: true,
      stdinDone: waitFor('the new size in the output', () => /22 77/.test(seen), 15_000).then(
        () => undefined,
      ),
      onOpen: ({ resize, stdout, session }) => {
        stdout?.on('data', (d: Buffer) => {
          seen += d.toString();
          if (!resizeSent) {
            resizeSent = true;
            resize?.write(`${JSON.stringify({ Width: 77, Height: 22 })}\n`);
          }
          if (/22 77/.test(seen)) session.destroy();
        });
      },
    });
    await res.catch(() => undefined);
    assert.match(seen, /22 77\r\n/);
    assert.equal(
      (await cri.runtime.ContainerStatus({ container_id: tty })).status?.state,
      'CONTAINER_RUNNING',
    );
  });

  it('WebSocket port-forward: the port header first, then the data', async () => {
    const { url } = await cri.runtime.PortForward({ pod_sandbox_id: podId, port: [80] });
    const s = await wsConnect(url, ['v4.channel.k8s.io']);
    s.send(0, 'GET /index.html HTTP/1.0\r\n\r\n');
    await s.closed;
    const data = s.channels.get(0) ?? [];
    assert.deepEqual([...(data[0] ?? [])], [80, 0], 'first message: port 80 little-endian');
    assert.match(Buffer.concat(data.slice(1)).toString(), /hello-from-pod/);
  });

  it('bad input: refused clearly, and the daemon keeps serving', async () => {
    const exit = await rejection(
      cri.runtime.Exec({
        container_id: shell,
        cmd: ['true'],
        tty: true,
        stderr: true,
        stdout: true,
        stdin: false,
      }),
    );
    assert.equal(exit.code, GrpcCode.INVALID_ARGUMENT);
    assert.match(exit.details, /stderr/);
    const none = await rejection(
      cri.runtime.Exec({
        container_id: shell,
        cmd: ['true'],
        tty: false,
        stderr: false,
        stdout: false,
        stdin: false,
      }),
    );
    assert.equal(none.code, GrpcCode.INVALID_ARGUMENT);
    const empty = await rejection(cri.runtime.Exec({ container_id: shell, cmd: [], stdout: true }));
    assert.equal(empty.code, GrpcCode.INVALID_ARGUMENT);
    const unknown = await rejection(
      cri.runtime.Exec({ container_id: 'f'.repeat(64), cmd: ['true'], stdout: true }),
    );
    assert.equal(unknown.code, GrpcCode.NOT_FOUND);
    // A port that is no TCP port is not refused here (containerd and CRI-O take it too): its own
    // stream fails when opened, and the other ports of the request still work.
    const { url: pfUrl } = await cri.runtime.PortForward({ pod_sandbox_id: podId, port: [70000, 80] });
    const ws = await wsConnect(pfUrl, ['v4.channel.k8s.io']);
    ws.send(2, 'GET /index.html HTTP/1.0\r\nHost: pod\r\n\r\n');
    await waitFor('the reply on port 80', () => channelBytes(ws, 2).toString().includes('hello-from-pod'));
    await waitFor('port 70000 to fail', () => channelBytes(ws, 1).length > 2);
    ws.ws.close();

    // A stopped container: Exec and Attach are refused.
    const stopped = await ctr('stopped', ['true']);
    await waitFor(
      'the container to exit',
      async () =>
        (await cri.runtime.ContainerStatus({ container_id: stopped })).status?.state === 'CONTAINER_EXITED',
      10_000,
    );
    assert.equal(
      (await rejection(cri.runtime.Exec({ container_id: stopped, cmd: ['true'], stdout: true }))).code,
      GrpcCode.FAILED_PRECONDITION,
    );
    assert.equal(
      (await rejection(cri.runtime.Attach({ container_id: stopped, stdout: true }))).code,
      GrpcCode.FAILED_PRECONDITION,
    );

    // A URL for a container that stops before the client connects: the session reports the error.
    const doomed = await ctr('doomed', ['sleep', '1000']);
    const doomedUrl = await execUrl(doomed, ['true']);
    await cri.runtime.StopContainer({ container_id: doomed, timeout: 0 }, 30_000);
    const late = await spdyExec(doomedUrl);
    assert.match(late.errorStream, /InternalError|cannot exec/);

    const url = await execUrl(shell, ['true']);
    const base = new URL(url);
    // No upgrade at all.
    const plain = await fetch(url);
    assert.equal(plain.status, 400);
    // Unknown protocol versions: 400 with the supported list.
    const refused = await spdyUpgrade(url, ['v9.channel.k8s.io']);
    assert.ok(isRefusal(refused));
    assert.equal(refused.status, 400);
    assert.match(String(refused.headers['x-accepted-stream-protocol-versions']), /v4\.channel\.k8s\.io/);
    const noHeader = await spdyUpgrade(url, []);
    assert.ok(isRefusal(noHeader));
    assert.equal(noHeader.status, 400);
    // The token survived those refusals; garbage frames after a good upgrade kill only that
    // session, not one running beside it.
    const bystanderUp = await spdyUpgrade(await execUrl(shell, ['cat'], { stdin: true }), [
      'v4.channel.k8s.io',
    ]);
    assert.ok(!isRefusal(bystanderUp));
    const bErr = await openStream(bystanderUp.session, { streamType: 'error' });
    bErr.end();
    const bIn = await openStream(bystanderUp.session, { streamType: 'stdin' });
    const bOut = await openStream(bystanderUp.session, { streamType: 'stdout' });
    await openStream(bystanderUp.session, { streamType: 'stderr' });
    let bSeen = '';
    bOut.on('data', (d: Buffer) => (bSeen += d.toString()));
    const up = await spdyUpgrade(url, ['v4.channel.k8s.io']);
    assert.ok(!isRefusal(up));
    // A control frame of SPDY version 0x7fff: no SPDY peer sends that.
    up.socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 4, 1, 2, 3, 4]));
    await new Promise<void>((resolve) => {
      up.socket.once('close', () => {
        resolve();
      });
      setTimeout(resolve, 5_000).unref();
    });
    assert.ok(up.socket.destroyed || up.socket.readableEnded, 'the server closed the garbage session');
    // A raw socket speaking nonsense HTTP.
    await new Promise<void>((resolve) => {
      const sock = connect(Number(base.port), base.hostname, () => sock.end('NONSENSE\r\n\r\n'));
      sock.on('close', () => {
        resolve();
      });
      sock.on('error', () => {
        resolve();
      });
      sock.resume();
    });
    const after = await spdyExec(await execUrl(shell, ['echo', 'still-serving']));
    assert.equal(after.stdout.toString(), 'still-serving\n');
    bIn.write('bystander\n');
    await waitFor('the bystander session echo', () => bSeen.includes('bystander'));
    bystanderUp.session.destroy();
  });

  it('metrics count sessions and bytes', async () => {
    const text = await (await fetch(`${setup.crisp.metricsUrl}/metrics`)).text();
    const bytes = /crisp_streaming_bytes_total\{kind="exec",direction="out"\} (\d+)/.exec(text);
    assert.ok(
      bytes,
      text
        .split('\n')
        .filter((l) => l.includes('streaming'))
        .join('\n'),
    );
    assert.ok(Number(bytes[1]) >= 10 * 1024 * 1024, 'the 10 MB exec is counted');
    assert.match(text, /crisp_streaming_bytes_total\{kind="portforward",direction="in"\} [1-9]/);
    await waitFor(
      'the sessions gauge back at 0',
      async () =>
        /crisp_streaming_sessions\{kind="exec"\} 0\b/.test(
          await (await fetch(`${setup.crisp.metricsUrl}/metrics`)).text(),
        ),
      10_000,
    );
  });
});
