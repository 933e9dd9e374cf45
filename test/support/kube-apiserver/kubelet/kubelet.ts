/**
 * The kubelet stand-in, one node: it binds unscheduled pods to itself (the scheduler's part), runs the pods bound to
 * it through PodWorkers, refreshes their volumes when Secrets and ConfigMaps change, serves their logs, and kills
 * everything on close (and, as a last resort, when the test process exits).
 *
 * Pods have no network or mount namespace: each gets its own loopback address (status.podIP) and must bind it (or
 * the ports of two pods collide); volume paths are rewritten to per-pod folders (env.ts). Resource limits, security
 * contexts, init containers and ephemeral containers are not applied.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { EventRecorder } from '../controllers/events.ts';
import { Controller } from '../controllers/controller.ts';
import type { Registry } from '../registry.ts';
import type { KubeObject, ResourceType } from '../resources.ts';
import type { StoreEvent } from '../store.ts';
import { ScaledClock, type KubeletClock } from './clock.ts';
import { PodWorker, type ProbeOutcome } from './pod-worker.ts';
import { imageResolver, type ImageResolver, type ImageSpec } from './runtime.ts';

export interface KubeletOptions {
  /** image reference -> how to run it; or a function. An image not found cannot be pulled. */
  images?: Readonly<Record<string, ImageSpec>> | ImageResolver;
  /** Multiplies every kubelet wait (probe periods, back-off, grace periods, preStop sleeps). Default 1. */
  timeScale?: number;
  /** Replaces the scaled clock (e.g. a ManualClock). */
  clock?: KubeletClock;
  /** Default 'standin-node'. */
  nodeName?: string;
  /** Log bytes kept per container (default 256 KiB). */
  logBytes?: number;
}

export interface KubeletDependencies {
  allocateIP(): string;
  issueToken(namespace: string, serviceAccount: string): string;
  apiHost: string;
  apiPort: number;
}

const HOST_IP = '127.0.0.1';

export class Kubelet extends Controller {
  readonly nodeName: string;
  readonly clock: KubeletClock;
  private readonly registry: Registry;
  private readonly pods: ResourceType;
  private readonly workers = new Map<string, PodWorker>();
  private readonly stopping = new Set<Promise<void>>();
  private readonly baseDir: string;
  private readonly images: ImageResolver;
  private readonly events: EventRecorder;
  private readonly dependencies: KubeletDependencies;
  private readonly logBytes: number;
  private readonly probeListeners = new Set<(outcome: ProbeOutcome) => void>();
  private readonly onExit = (): void => {
    for (const worker of this.workers.values()) worker.killNow();
  };

  constructor(registry: Registry, options: KubeletOptions, dependencies: KubeletDependencies) {
    super('kubelet', registry.store);
    this.registry = registry;
    this.pods = registry.catalogue.resolve('pods');
    this.nodeName = options.nodeName ?? 'standin-node';
    this.clock = options.clock ?? new ScaledClock(options.timeScale ?? 1);
    this.images = imageResolver(options.images);
    this.events = new EventRecorder(registry, 'kubelet');
    this.dependencies = dependencies;
    this.logBytes = options.logBytes ?? 256 * 1024;
    this.baseDir = mkdtempSync(path.join(tmpdir(), 'kubelet-standin-'));
    process.on('exit', this.onExit);
    for (const pod of registry.store.list('/pods')) this.queue.add(`${pod.metadata.namespace}/${pod.metadata.name}`);
  }

  protected observe(event: StoreEvent): void {
    if (event.table === '/pods') this.queue.add(`${event.namespace}/${event.name}`);
    else if (event.table === '/secrets' || event.table === '/configmaps') {
      for (const worker of this.workers.values()) if (worker.namespace === event.namespace) setImmediate(() => worker.refresh());
    }
  }

  /** Calls `listener` with every probe result; returns the unsubscribe function. */
  onProbe(listener: (outcome: ProbeOutcome) => void): () => void {
    this.probeListeners.add(listener);
    return () => this.probeListeners.delete(listener);
  }

  logs(namespace: string, pod: string, container: string | undefined): string | undefined {
    return this.workers.get(`${namespace}/${pod}`)?.logs(container);
  }

  protected reconcile(key: string): void {
    const [namespace, name] = key.split('/') as [string, string];
    const pod = this.registry.find(this.pods, namespace, name);
    const worker = this.workers.get(key);
    if (worker !== undefined && (pod === undefined || pod.metadata.uid !== worker.uid)) {
      // Deleted for good (or replaced by a pod of the same name) while its containers may still run.
      this.workers.delete(key);
      this.track(worker.kill(2_000));
    }
    if (pod === undefined) return;
    const spec = pod.spec as { nodeName?: string; schedulerName?: string };
    if (!spec.nodeName) {
      if ((spec.schedulerName ?? 'default-scheduler') === 'default-scheduler' && pod.metadata.deletionTimestamp === undefined) this.bind(pod);
      return;
    }
    if (spec.nodeName !== this.nodeName) return;
    const current = this.workers.get(key);
    if (current !== undefined) {
      current.update(pod);
      return;
    }
    const phase = (pod.status as { phase?: string } | undefined)?.phase;
    if (phase === 'Succeeded' || phase === 'Failed') return;
    const created = new PodWorker(
      {
        registry: this.registry,
        pods: this.pods,
        clock: this.clock,
        images: this.images,
        events: this.events,
        nodeName: this.nodeName,
        hostIP: HOST_IP,
        apiHost: this.dependencies.apiHost,
        apiPort: this.dependencies.apiPort,
        baseDir: this.baseDir,
        logBytes: this.logBytes,
        allocateIP: () => this.dependencies.allocateIP(),
        issueToken: (ns, account) => this.dependencies.issueToken(ns, account),
        probed: (outcome) => {
          for (const listener of [...this.probeListeners]) listener(outcome);
        },
      },
      pod,
    );
    this.workers.set(key, created);
    created.start();
  }

  private bind(pod: KubeObject): void {
    this.registry.bind(pod, this.nodeName);
    this.events.record(pod, 'Normal', 'Scheduled', `Successfully assigned ${pod.metadata.namespace}/${pod.metadata.name} to ${this.nodeName}`);
  }

  private track(stop: Promise<void>): void {
    this.stopping.add(stop);
    void stop.finally(() => this.stopping.delete(stop));
  }

  /** Kills every container at once (SIGKILL) and removes the pods' folders. */
  async close(): Promise<void> {
    this.stop();
    const workers = [...this.workers.values()];
    this.workers.clear();
    for (const worker of workers) worker.killNow();
    await Promise.all([...workers.map((w) => w.kill(0)), ...this.stopping]);
    process.off('exit', this.onExit);
    rmSync(this.baseDir, { recursive: true, force: true });
  }
}
