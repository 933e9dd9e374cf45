/**
 * The local cluster's service process: what kube-proxy and the Service are on Kubernetes. It runs the UDP front
 * devices talk to and the upstream echo relays forward to, and every `pollMs` it lists the pods that carry the
 * fleet's selector label (app=<name>), probes their /readyz over mTLS and gives the front the new endpoint list.
 * Terminating and dead pods leave the list (their flows end); running pods stay, ready or not (their flows stay
 * sticky: stragglers).
 *
 * It writes service.json when it starts listening and whenever the endpoint list changes, so relayctl processes
 * can see where devices connect and what the front routes to. It exits by itself when the cluster is torn down
 * under it (cluster.json gone), so an interrupted teardown leaves no front holding its port.
 *
 * It also runs the cluster's controller (controller.ts) on a loop of its own: missing pods created, exited relays
 * restarted with the kubelet's back-off, deleted pods kept deleted.
 */
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ManagementClient } from '../../../api/management-client.ts';
import { LocalController } from './controller.ts';
import { loadLocalPki, operatorClientTlsOptions } from './pki.ts';
import { processMatches } from './processes.ts';
import { probeReadiness, relayMarkers, mgmtUrlOf } from './relays.ts';
import type { RestartBackoffTimings } from './restart-backoff.ts';
import { listJson, removeFile, writeJsonAtomic } from './state-fs.ts';
import {
  STATE_VERSION,
  localPaths,
  readCluster,
  readPod,
  readService,
  type ClusterRecord,
  type LocalPaths,
  type PodRecord,
  type ServiceBackend,
  type ServiceRecord,
} from './state.ts';
import { UdpFront } from './udp-front.ts';
import { UpstreamEcho } from './upstream-echo.ts';

// service-main.js in the build (dist/).
export const SERVICE_MAIN = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './service-main.ts' : './service-main.js', import.meta.url));
/** service-main's flag for LocalServiceOptions.restartBackoff, as a factor of the kubelet's timings (tests). */
export const RESTART_BACKOFF_SCALE_FLAG = '--restart-backoff-scale';
/** The label the Service selects pods by; deploy puts it on the first set, and new sets copy their template's. */
export const SELECTOR_LABEL = 'app';

/** What identifies the service process of a state folder (see processes.ts). */
export function serviceMarkers(stateDir: string): string[] {
  return [SERVICE_MAIN, localPaths(stateDir).stateDir];
}

export interface LocalServiceOptions {
  stateDir: string;
  log: Logger;
  /** Default 250 ms. */
  pollMs?: number;
  /** Called when the service stopped by itself (cluster torn down). */
  onStopped?: () => void;
  /** The controller's restart back-off; default the kubelet's (10 s doubling to 5 min). Tests scale it down. */
  restartBackoff?: RestartBackoffTimings;
}

export class LocalService {
  readonly #paths: LocalPaths;
  readonly #cluster: ClusterRecord;
  readonly #log: Logger;
  readonly #front: UdpFront;
  readonly #echo: UpstreamEcho;
  readonly #client: ManagementClient;
  readonly #markers: (pod: string) => string[];
  readonly #onStopped: () => void;
  readonly #controller: LocalController;
  #record: ServiceRecord;
  /** Endpoints and controller on loops of their own: a controller pass waiting for the state lock must not hold the endpoints back. */
  readonly #endpointsLoop: PassLoop;
  readonly #controllerLoop: PassLoop;
  #lastControllerProblem: string | null = null;
  #stopped = false;
  #lastProblem: string | null = null;

  private constructor(init: {
    paths: LocalPaths;
    cluster: ClusterRecord;
    log: Logger;
    front: UdpFront;
    echo: UpstreamEcho;
    client: ManagementClient;
    markers: (pod: string) => string[];
    pollMs: number;
    record: ServiceRecord;
    onStopped: () => void;
    controller: LocalController;
  }) {
    this.#paths = init.paths;
    this.#cluster = init.cluster;
    this.#log = init.log;
    this.#front = init.front;
    this.#echo = init.echo;
    this.#client = init.client;
    this.#markers = init.markers;
    this.#record = init.record;
    this.#onStopped = init.onStopped;
    this.#controller = init.controller;
    this.#endpointsLoop = new PassLoop(() => this.#poll(), init.pollMs);
    this.#controllerLoop = new PassLoop(() => this.#reconcile(), init.pollMs);
  }

  static async start(options: LocalServiceOptions): Promise<LocalService> {
    const paths = localPaths(options.stateDir);
    const cluster = await readCluster(paths);
    if (cluster === null) throw new Error(`no local cluster in ${paths.stateDir}: ${paths.cluster} is missing`);
    const pki = await loadLocalPki(paths.stateDir);
    const echo = new UpstreamEcho(cluster.upstream.address);
    const front = new UdpFront({ host: cluster.service.address, affinityMs: cluster.affinityMs });
    const client = new ManagementClient(operatorClientTlsOptions(pki), { timeoutMs: 1_000 });
    try {
      const upstream = await listenOrExplain('upstream echo', cluster.upstream, (port) => echo.listen(port));
      const service = await listenOrExplain('service front', cluster.service, (port) => front.listen(port));
      const record: ServiceRecord = {
        version: STATE_VERSION,
        pid: process.pid,
        startedAt: Date.now(),
        service: { address: service.address, port: service.port },
        upstream: { address: upstream.host, port: upstream.port },
        backends: [],
        updatedAt: Date.now(),
        tlsCertificate: pki.operator.fingerprint256,
      };
      await writeJsonAtomic(paths.service, record);
      const started = new LocalService({
        paths,
        cluster,
        log: options.log,
        front,
        echo,
        client,
        markers: (pod) => relayMarkers(pki, pod),
        pollMs: options.pollMs ?? 250,
        record,
        onStopped: options.onStopped ?? (() => undefined),
        controller: new LocalController({
          paths,
          pki,
          log: options.log.child({ loop: 'controller' }),
          ...(options.restartBackoff === undefined ? {} : { restartBackoff: options.restartBackoff }),
        }),
      });
      options.log.info({ service: record.service, upstream: record.upstream, affinityMs: cluster.affinityMs, selector: `${SELECTOR_LABEL}=${cluster.name}` }, 'local service listening');
      started.#endpointsLoop.start();
      started.#controllerLoop.start();
      return started;
    } catch (error) {
      await Promise.allSettled([front.close(), echo.close(), client.close()]);
      throw error;
    }
  }

  get record(): ServiceRecord {
    return this.#record;
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.all([this.#endpointsLoop.stop(), this.#controllerLoop.stop()]);
    await Promise.allSettled([this.#front.close(), this.#echo.close(), this.#client.close()]);
    // Leave a newer service's record alone.
    const current = await readService(this.#paths).catch(() => null);
    if (current?.pid === process.pid) await removeFile(this.#paths.service);
    this.#log.info(this.#front.stats(), 'local service stopped');
  }

  async #reconcile(): Promise<void> {
    try {
      await this.#controller.reconcile();
      this.#lastControllerProblem = null;
    } catch (error) {
      // A held state lock or an unreadable folder: the next pass tries again. Said once, not every pass.
      const problem = (error as Error).message;
      if (problem !== this.#lastControllerProblem) this.#log.warn({ err: { message: problem } }, 'controller pass failed; trying again');
      this.#lastControllerProblem = problem;
    }
  }

  async #poll(): Promise<void> {
    try {
      if ((await readCluster(this.#paths)) === null) {
        this.#log.warn({ cluster: this.#paths.cluster }, 'the local cluster was torn down; stopping');
        void this.stop().then(this.#onStopped, this.#onStopped);
        return;
      }
      const backends = await this.#observeBackends();
      this.#front.setBackends(backends);
      if (JSON.stringify(backends) !== JSON.stringify(this.#record.backends)) {
        this.#record = { ...this.#record, backends, updatedAt: Date.now() };
        await writeJsonAtomic(this.#paths.service, this.#record);
        this.#log.info({ backends: backends.map((b) => `${b.id}${b.ready ? '' : ' (not ready)'}`) }, 'endpoints changed');
      }
      this.#lastProblem = null;
    } catch (error) {
      // Say it once, not four times a second.
      const problem = (error as Error).message;
      if (problem !== this.#lastProblem) this.#log.warn({ err: { message: problem } }, 'cannot refresh endpoints; keeping the last ones');
      this.#lastProblem = problem;
    }
  }

  async #observeBackends(): Promise<ServiceBackend[]> {
    const pods: PodRecord[] = [];
    for (const name of await listJson(this.#paths.pods)) {
      const pod = await readPod(this.#paths, name).catch(() => null);
      if (pod === null || pod.deletingAt !== null || pod.labels[SELECTOR_LABEL] !== this.#cluster.name) continue;
      if (!processMatches(pod.pid, this.#markers(pod.name))) continue;
      pods.push(pod);
    }
    pods.sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
    return Promise.all(
      pods.map(async (pod) => ({
        id: pod.name,
        address: pod.address,
        port: pod.dtlsPort,
        ready: (await probeReadiness(this.#client, mgmtUrlOf(pod))).ready,
      })),
    );
  }
}

async function listenOrExplain<T>(what: string, at: { address: string; port: number }, listen: (port: number) => Promise<T>): Promise<T> {
  try {
    return await listen(at.port);
  } catch (error) {
    throw new Error(`${what}: cannot listen on ${at.address}:${at.port} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, {
      cause: error,
    });
  }
}

/** Runs `pass` at once, then `everyMs` after each pass ends, until stopped; `pass` must not throw. */
class PassLoop {
  readonly #pass: () => Promise<void>;
  readonly #everyMs: number;
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #stopped = false;

  constructor(pass: () => Promise<void>, everyMs: number) {
    this.#pass = pass;
    this.#everyMs = everyMs;
  }

  start(): void {
    this.#schedule(0);
  }

  /** No pass starts after this; resolves once the one running (if any) ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    await this.#running;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#pass().finally(() => {
        this.#running = null;
        this.#schedule(this.#everyMs);
      });
    }, ms);
  }
}
