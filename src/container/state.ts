/**
 * The container state machine, after libpod: the states, the one table of which operation may
 * run in which state, and the mapping to CRI's four states. docs/state-machine.md draws it.
 *
 *   configured ──init──▶ created ──start──▶ running ⇄ paused
 *        ▲                  │                  │
 *        └──── cleanup ─────┴── (exit) ──▶ stopped ──cleanup──▶ exited
 *   any ──remove──▶ removing ──▶ (gone)        unknown: runc and conmon disagree with the record
 */
import { FailedPreconditionError } from '../errors.js';

export type ContainerState =
  'configured' | 'created' | 'running' | 'paused' | 'stopped' | 'exited' | 'removing' | 'unknown';

export type ContainerOperation =
  | 'init'
  | 'start'
  | 'stop'
  | 'kill'
  | 'pause'
  | 'unpause'
  | 'cleanup'
  | 'remove'
  | 'exec'
  | 'attach'
  | 'reopenLog'
  | 'update';

/** Where each operation may start. Anything else is refused with FAILED_PRECONDITION. */
const allowed: Readonly<Record<ContainerOperation, readonly ContainerState[]>> = {
  init: ['configured', 'exited'],
  // A stopped or exited container is started again through reinit (cleanup + init), as libpod does.
  start: ['created', 'stopped', 'exited', 'configured'],
  stop: ['created', 'running', 'paused', 'stopped', 'exited', 'configured', 'unknown'],
  kill: ['running', 'paused', 'created'],
  pause: ['running'],
  unpause: ['paused'],
  cleanup: ['configured', 'created', 'stopped', 'exited', 'unknown'],
  remove: ['configured', 'created', 'running', 'paused', 'stopped', 'exited', 'removing', 'unknown'],
  exec: ['running'],
  // A paused container's stdio is still there; its output resumes when it is unpaused.
  attach: ['running', 'paused'],
  reopenLog: ['running'],
  update: ['created', 'running', 'paused'],
};

export function canRun(op: ContainerOperation, state: ContainerState): boolean {
  return allowed[op].includes(state);
}

/** Throws FAILED_PRECONDITION naming the container, the operation and the state. */
export function requireState(op: ContainerOperation, state: ContainerState, containerId: string): void {
  if (canRun(op, state)) return;
  throw new FailedPreconditionError(`container "${containerId}" is ${state}: cannot ${op} it`, {
    details: { containerId, state, op },
  });
}

export type CriContainerState =
  'CONTAINER_CREATED' | 'CONTAINER_RUNNING' | 'CONTAINER_EXITED' | 'CONTAINER_UNKNOWN';

/** configured/created → CREATED, running/paused → RUNNING, stopped/exited → EXITED, else UNKNOWN. */
export function toCriState(state: ContainerState): CriContainerState {
  switch (state) {
    case 'configured':
    case 'created':
      return 'CONTAINER_CREATED';
    case 'running':
    case 'paused':
      return 'CONTAINER_RUNNING';
    case 'stopped':
    case 'exited':
      return 'CONTAINER_EXITED';
    case 'removing':
    case 'unknown':
      return 'CONTAINER_UNKNOWN';
  }
}

/** Whether the container may still have processes (a stop must act). */
export function isActive(state: ContainerState): boolean {
  return state === 'created' || state === 'running' || state === 'paused';
}
