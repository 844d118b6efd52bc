/**
 * Connections to a port inside a pinned network namespace, for CRI PortForward. Node cannot enter
 * a namespace on one thread, so each connection is a child, bin/crisp-netns-connect: it enters
 * the namespace, connects to 127.0.0.1 and then [::1] (one after the other, as CRI-O and
 * containerd do), and relays the connection over its stdin/stdout with each direction
 * half-closed on its own. (socat was tried first: it does not close its stdout when the
 * connection ends while stdin is still open, so a reply would never end.)
 */
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, UnavailableError } from '../errors.js';
import { startPiped, type DebugLog, type PipedProcess } from '../util/command.js';

/** crisp's helper that connects inside a network namespace (bin/crisp-netns-connect). */
const NETNS_CONNECT = fileURLToPath(new URL('../../../bin/crisp-netns-connect', import.meta.url));

export interface NetnsConnection {
  readonly process: PipedProcess;
  /** The address that answered, e.g. `127.0.0.1:80`. */
  readonly address: string;
}

const CONNECT_TIMEOUT_MS = 10_000;

export async function dialInNetns(
  netnsPath: string,
  port: number,
  opts: { debug?: DebugLog } = {},
): Promise<NetnsConnection> {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidArgumentError('port', `must be a TCP port from 1 to 65535, got ${port}`);
  }
  const proc = startPiped(NETNS_CONNECT, [netnsPath, String(port)], opts.debug);
  const outcome = await new Promise<{ address: string } | { error: string }>((resolve) => {
    const timer = setTimeout(() => {
      proc.kill();
      resolve({ error: `no connection within ${CONNECT_TIMEOUT_MS} ms` });
    }, CONNECT_TIMEOUT_MS);
    proc.onStderr((line) => {
      if (line.startsWith('connected ')) {
        clearTimeout(timer);
        resolve({ address: line.slice('connected '.length).trim() });
      }
    });
    void proc.exited.then((exit) => {
      clearTimeout(timer);
      const why = /^error: (.*)$/m.exec(exit.stderrTail)?.[1];
      resolve({ error: why ?? (exit.stderrTail || `the helper exited with code ${String(exit.exitCode)}`) });
    });
  });
  if ('error' in outcome) {
    throw new UnavailableError(
      `cannot connect to localhost:${port} in the pod's network namespace (${outcome.error})`,
    );
  }
  return { process: proc, address: outcome.address };
}
