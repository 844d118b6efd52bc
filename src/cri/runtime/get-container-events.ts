/**
 * GetContainerEvents: a never-ending stream of CREATED/STARTED/STOPPED/DELETED events, each with
 * the full status of the pod and of all its containers as they were right after the change
 * (kubelet's evented PLEG builds its pod cache from them, keyed by created_at).
 *
 * - Every event from the moment of the call is sent, in order. The stream honours the client's
 *   flow control: when grpc-js's buffer is full, sending waits for it to drain while further
 *   events queue in the subscription; a client that falls `maxQueued` events behind is cut off
 *   with RESOURCE_EXHAUSTED (it must reconnect and relist), never skipped silently.
 * - A pod's infra container is reported under the pod sandbox id, as containerd and CRI-O do:
 *   kubelet drops its cache entry for a pod on the DELETED event whose container_id is the
 *   sandbox id, and counts running pods from the sandbox's STARTED/STOPPED events.
 * - containers_statuses lists the pod's application containers, as ListContainers does.
 * - The stream ends with CANCELLED when the client goes away (its subscription is dropped at
 *   once) and with UNAVAILABLE when the daemon shuts down.
 */
import type { ContainerEventResponse } from '../../generated/runtime/v1/ContainerEventResponse.js';
import type { ContainerEventType as CriEventType } from '../../generated/runtime/v1/ContainerEventType.js';
import type { GetEventsRequest__Output } from '../../generated/runtime/v1/GetEventsRequest.js';
import type {
  ContainerEvent,
  ContainerEventType,
  EventSubscription,
  SubscribeOptions,
} from '../../container/events.js';
import { CanceledError } from '../../errors.js';
import { toContainerStatus } from '../convert/container.js';
import { toPodSandboxStatus } from '../convert/sandbox.js';
import type { StreamImpl } from '../handler.js';

/** Where events come from: the container engine's ContainerEventBus. */
export interface ContainerEventSource {
  subscribe(options?: SubscribeOptions): EventSubscription;
}

const criEventType: Readonly<Record<ContainerEventType, CriEventType>> = {
  CREATED: 'CONTAINER_CREATED_EVENT',
  STARTED: 'CONTAINER_STARTED_EVENT',
  STOPPED: 'CONTAINER_STOPPED_EVENT',
  DELETED: 'CONTAINER_DELETED_EVENT',
};

/** The CRI message for one event (pure: everything comes from the event's snapshot). */
export function toContainerEventResponse(event: ContainerEvent): ContainerEventResponse {
  const infra = event.containers.find((c) => c.config.kind === 'infra');
  const sandbox = event.sandbox;
  return {
    container_id: event.kind === 'infra' ? event.sandboxId : event.containerId,
    container_event_type: criEventType[event.type],
    created_at: event.timestampNs.toString(),
    // READY as PodSandboxStatus reports it (SandboxManager.view), from the snapshot's records.
    pod_sandbox_status: sandbox
      ? toPodSandboxStatus({
          sandbox,
          infra,
          ready: sandbox.state.state === 'ready' && infra?.state.state === 'running',
        })
      : null,
    containers_statuses: event.containers.filter((c) => c.config.kind === 'app').map(toContainerStatus),
  };
}

export function getContainerEvents(
  events: ContainerEventSource,
  options: SubscribeOptions = {},
): StreamImpl<GetEventsRequest__Output, ContainerEventResponse> {
  // Every subscriber gets the same event objects: convert each once, whoever sends it first.
  const converted = new WeakMap<ContainerEvent, ContainerEventResponse>();
  const convert = (event: ContainerEvent): ContainerEventResponse => {
    let msg = converted.get(event);
    if (!msg) {
      msg = toContainerEventResponse(event);
      converted.set(event, msg);
    }
    return msg;
  };
  return async (_req, send, scope) => {
    if (scope.signal.aborted) throw new CanceledError('the client closed the event stream');
    const subscription = events.subscribe(options);
    const leave = (): void => {
      subscription.close();
    };
    scope.signal.addEventListener('abort', leave);
    try {
      for (;;) {
        const event = await subscription.next();
        if (event === undefined) break;
        // Wait for the client to catch up; a cut-off (too far behind) ends the wait at once.
        if (!send(convert(event))) await scope.drained(subscription.signal);
      }
    } finally {
      scope.signal.removeEventListener('abort', leave);
      subscription.close();
    }
    throw new CanceledError('the client closed the event stream');
  };
}
