/**
 * core/v1 Events, as controllers and the kubelet record them (SuccessfulCreate, FailedCreate, Scheduled, Pulled,
 * Started, Killing, Unhealthy, BackOff, ...). A repeat of the same reason and message for the same object bumps
 * `count` and `lastTimestamp` instead of adding an event, as the real event correlator does; after 25 repeats the
 * correlator's spam filter drops further ones (a probe failing every few milliseconds on a scaled clock would
 * otherwise flood the store and the watch history).
 */
import { randomBytes } from 'node:crypto';
import { rfc3339, type Registry } from '../registry.ts';
import type { KubeObject, ResourceType } from '../resources.ts';

export type EventType = 'Normal' | 'Warning';

const MAX_REPEATS = 25;

export class EventRecorder {
  private readonly registry: Registry;
  private readonly component: string;
  private readonly events: ResourceType;
  private readonly recent = new Map<string, string>();

  constructor(registry: Registry, component: string) {
    this.registry = registry;
    this.component = component;
    this.events = registry.catalogue.resolve('events');
  }

  record(involved: KubeObject, type: EventType, reason: string, message: string, fieldPath?: string): void {
    const namespace = involved.metadata.namespace ?? 'default';
    if (this.registry.store.get('/namespaces', '', namespace)?.metadata.deletionTimestamp !== undefined) return;
    const key = `${involved.metadata.uid}|${reason}|${message}`;
    const now = rfc3339(new Date());
    const existingName = this.recent.get(key);
    const existing = existingName === undefined ? undefined : this.registry.find(this.events, namespace, existingName);
    try {
      if (existing !== undefined) {
        if (((existing.count as number | undefined) ?? 1) >= MAX_REPEATS) return;
        const next = structuredClone(existing) as KubeObject;
        next.count = ((existing.count as number | undefined) ?? 1) + 1;
        next.lastTimestamp = now;
        this.registry.commitUpdate(this.events, existing, next, '', { fieldManager: this.component }, undefined);
        return;
      }
      const name = `${involved.metadata.name}.${randomBytes(8).toString('hex')}`;
      const involvedObject: Record<string, unknown> = {
        kind: involved.kind,
        namespace,
        name: involved.metadata.name,
        uid: involved.metadata.uid,
        apiVersion: involved.apiVersion,
        resourceVersion: involved.metadata.resourceVersion,
      };
      if (fieldPath !== undefined) involvedObject.fieldPath = fieldPath;
      this.registry.create(
        this.events,
        namespace,
        {
          metadata: { name },
          involvedObject,
          reason,
          message,
          source: { component: this.component },
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
          type,
          reportingComponent: this.component,
          reportingInstance: '',
        },
        { fieldManager: this.component },
      );
      this.recent.set(key, name);
      if (this.recent.size > 1000) this.recent.delete(this.recent.keys().next().value!);
    } catch {
      // Events are best effort, as in a real cluster (the namespace may be going away).
    }
  }
}
