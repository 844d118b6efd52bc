/**
 * What goes on the error stream when an exec or attach ends. v4 and later carry a JSON
 * metav1.Status (client-go reads the exit code from the `ExitCode` cause); v1-v3 carry the
 * error's text and nothing on success.
 */
export type StreamOutcome =
  { kind: 'success' } | { kind: 'exit'; code: number } | { kind: 'error'; message: string };

export function encodeOutcome(outcome: StreamOutcome, version: number): Buffer | undefined {
  if (version >= 4) return Buffer.from(JSON.stringify(statusOf(outcome)));
  switch (outcome.kind) {
    case 'success':
      return undefined;
    case 'exit':
      return Buffer.from(exitMessage(outcome.code));
    case 'error':
      return Buffer.from(outcome.message);
  }
}

function exitMessage(code: number): string {
  return `command terminated with non-zero exit code: exit status ${code}`;
}

function statusOf(outcome: StreamOutcome): Record<string, unknown> {
  switch (outcome.kind) {
    case 'success':
      return { metadata: {}, status: 'Success' };
    case 'exit':
      return {
        metadata: {},
        status: 'Failure',
        message: exitMessage(outcome.code),
        reason: 'NonZeroExitCode',
        // The cause's `type` field serialises as "reason"; client-go parses the message as a uint8.
        details: { causes: [{ reason: 'ExitCode', message: String(outcome.code & 0xff) }] },
      };
    case 'error':
      return {
        metadata: {},
        status: 'Failure',
        message: `Internal error occurred: ${outcome.message}`,
        reason: 'InternalError',
        details: { causes: [{ message: outcome.message }] },
        code: 500,
      };
  }
}
