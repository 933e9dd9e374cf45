/**
 * One pod on the stand-in kubelet: its address, its folder and volumes, one real process per container, probes,
 * restarts with back-off, the pod status, and graceful termination.
 *
 * Start: a loopback address of its own (status.podIP), volumes materialised (a missing Secret keeps the pod in
 * ContainerCreating with a FailedMount event), then each container: image looked up in the runtime (unknown:
 * ErrImagePull, then ImagePullBackOff, retried with back-off), environment resolved (a missing Secret key:
 * CreateContainerConfigError), process started.
 *
 * Restarts (restartPolicy Always, or OnFailure after a failure) follow the kubelet's back-off (lifecycle.ts): the first restart is
 * immediate, a container that exits again within the current delay waits in CrashLoopBackOff (`back-off 10s
 * restarting failed container=...`) until that delay, counted from its previous restart, has passed; the delay
 * doubles from 10 s to 5 min and starts over after 10 min without a restart. A failed liveness or startup probe
 * kills the container, which then restarts the same way.
 *
 * Termination (deletionTimestamp set): each running container's preStop (sleep, `sleep N` exec, other exec,
 * httpGet) runs within the grace period, then SIGTERM, then SIGKILL when the grace period (at least 2 s after preStop)
 * is over; readiness probes keep running meanwhile. Then the final status (terminal phase), and the pod is deleted
 * for good.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { EventRecorder } from '../controllers/events.ts';
import type { Container, PodSpec } from '../kinds/pod-spec.ts';
import { rfc3339, type Registry } from '../registry.ts';
import type { KubeObject, ResourceType } from '../resources.ts';
import { StatusError } from '../errors.ts';
import type { KubeletClock } from './clock.ts';
import { containerEnv, ContainerConfigError, rewritePath, type Mount, type ObjectLookup } from './env.ts';
import { inBackoff, LogBuffer, nextBackoff, runPreStop, type Backoff } from './lifecycle.ts';
import { Prober, type ProbeResult, type ProbeTarget } from './probes.ts';
import { processLine, type ImageResolver } from './runtime.ts';
import { MountError, PodVolumes } from './volumes.ts';

/** The kubelet's minimum grace after a preStop hook used the whole grace period. */
const MIN_GRACE_MS = 2_000;
/** How often a pod whose volumes or config could not be set up is tried again. */
const RETRY_MS = 10_000;
/** How long ErrImagePull shows before ImagePullBackOff. */
const PULL_REPORT_MS = 1_000;

export interface WorkerContext {
  registry: Registry;
  pods: ResourceType;
  clock: KubeletClock;
  images: ImageResolver;
  events: EventRecorder;
  nodeName: string;
  hostIP: string;
  apiHost: string;
  apiPort: number;
  baseDir: string;
  logBytes: number;
  allocateIP(): string;
  issueToken(namespace: string, serviceAccount: string): string;
  /** Every probe result (tests step a manual clock probe by probe). */
  probed(result: ProbeOutcome): void;
}

export interface ProbeOutcome {
  namespace: string;
  pod: string;
  container: string;
  kind: 'Readiness' | 'Liveness' | 'Startup';
  ok: boolean;
  message: string;
}

type State =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | { terminated: { exitCode: number; signal?: number; reason: string; message?: string; startedAt: string; finishedAt: string; containerID: string } };

interface ContainerRun {
  spec: Container;
  restartCount: number;
  state: State;
  lastState: State | undefined;
  everRan: boolean;
  ready: boolean;
  started: boolean;
  containerID: string;
  runs: number;
  child: ChildProcess | undefined;
  exited: Promise<void>;
  /** The kubelet stops this process to start a new one itself (definition changed): no restart on exit. */
  replacing: boolean;
  probes: Prober[];
  backoff: Backoff | undefined;
  pull: Backoff | undefined;
  cancelRetry: (() => void) | undefined;
  log: LogBuffer;
}

const SIGNALS: Record<string, number> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGHUP: 1, SIGABRT: 6, SIGSEGV: 11 };

export class PodWorker {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  private readonly context: WorkerContext;
  private pod: KubeObject;
  private ip = '';
  private dir = '';
  private volumes: PodVolumes | undefined;
  private mounted = false;
  private token: string | undefined;
  private startTime = '';
  private readonly runs: ContainerRun[];
  private terminating = false;
  private finished = false;
  private statusQueued = false;
  private cancelRetry: (() => void) | undefined;
  private readonly transitions = new Map<string, { status: string; time: string }>();

  constructor(context: WorkerContext, pod: KubeObject) {
    this.context = context;
    this.pod = pod;
    this.uid = pod.metadata.uid!;
    this.namespace = pod.metadata.namespace!;
    this.name = pod.metadata.name!;
    this.runs = ((pod.spec as PodSpec).containers ?? []).map((spec) => ({
      spec,
      restartCount: 0,
      state: { waiting: { reason: 'ContainerCreating' } },
      lastState: undefined,
      everRan: false,
      ready: false,
      started: false,
      containerID: '',
      runs: 0,
      child: undefined,
      exited: Promise.resolve(),
      replacing: false,
      probes: [],
      backoff: undefined,
      pull: undefined,
      cancelRetry: undefined,
      log: new LogBuffer(context.logBytes),
    }));
  }

  private now(): string {
    return rfc3339(new Date(this.context.clock.now()));
  }

  private get spec(): PodSpec {
    return this.pod.spec as PodSpec;
  }

  start(): void {
    this.ip = this.context.allocateIP();
    this.dir = mkdtempSync(path.join(this.context.baseDir, `${this.namespace}_${this.name}-`));
    this.volumes = new PodVolumes(this.dir);
    this.startTime = this.now();
    this.writeStatusNow();
    this.prepareAndLaunch();
    if (this.pod.metadata.deletionTimestamp !== undefined) void this.terminate();
  }

  /** The pod object changed in the API. */
  update(pod: KubeObject): void {
    this.pod = pod;
    if (pod.metadata.deletionTimestamp !== undefined) {
      void this.terminate();
      return;
    }
    for (const run of this.runs) {
      const next = (pod.spec as PodSpec).containers?.find((c) => c.name === run.spec.name);
      if (next === undefined || next.image === run.spec.image) continue;
      run.spec = next;
      if (run.child !== undefined) {
        this.context.events.record(this.pod, 'Normal', 'Killing', `Container ${run.spec.name} definition changed, will be restarted`, this.fieldPath(run));
        run.replacing = true;
        void this.stopContainer(run, this.context.clock.now() + this.graceMs(), true).then(() => {
          run.replacing = false;
          this.launch(run, true);
        });
      } else this.launch(run, false);
    }
  }

  /** A Secret or ConfigMap of the namespace changed: refresh volumes, retry what was waiting for it. */
  refresh(): void {
    if (this.terminating || this.volumes === undefined) return;
    if (!this.mounted) {
      this.prepareAndLaunch();
      return;
    }
    try {
      this.volumes.materialise(this.pod, this.volumeContext());
    } catch {
      // A Secret removed after start: the files stay as they were, as with the real kubelet.
    }
    for (const run of this.runs) if ('waiting' in run.state && run.state.waiting.reason === 'CreateContainerConfigError') this.launch(run, false);
  }

  logs(container: string | undefined): string | undefined {
    const run = container === undefined ? this.runs[0] : this.runs.find((r) => r.spec.name === container);
    if (run === undefined || !run.everRan) return undefined;
    return run.log.text();
  }

  private lookup(): ObjectLookup {
    const { registry } = this.context;
    return {
      secret: (name) => registry.store.get('/secrets', this.namespace, name),
      configMap: (name) => registry.store.get('/configmaps', this.namespace, name),
    };
  }

  private volumeContext(): { lookup: ObjectLookup; token: () => string } {
    return {
      lookup: this.lookup(),
      token: () => (this.token ??= this.context.issueToken(this.namespace, this.spec.serviceAccountName ?? 'default')),
    };
  }

  private fieldPath(run: ContainerRun): string {
    return `spec.containers{${run.spec.name}}`;
  }

  private prepareAndLaunch(): void {
    if (this.terminating) return;
    this.cancelRetry?.();
    if ((this.spec.initContainers ?? []).length > 0) {
      for (const run of this.runs) run.state = { waiting: { reason: 'CreateContainerConfigError', message: 'init containers are not supported by the stand-in kubelet' } };
      this.queueStatus();
      return;
    }
    try {
      this.volumes!.materialise(this.pod, this.volumeContext());
      this.mounted = true;
    } catch (error) {
      if (!(error instanceof MountError)) throw error;
      this.context.events.record(this.pod, 'Warning', 'FailedMount', error.message);
      this.cancelRetry = this.context.clock.after(RETRY_MS, () => this.prepareAndLaunch());
      this.queueStatus();
      return;
    }
    for (const run of this.runs) if (run.child === undefined && run.cancelRetry === undefined) this.launch(run, false);
  }

  private graceMs(): number {
    return (this.spec.terminationGracePeriodSeconds ?? 30) * 1000;
  }

  private mountsOf(run: ContainerRun): Mount[] {
    return this.volumes?.mounts(run.spec) ?? [];
  }

  private baseEnv(extra: Readonly<Record<string, string>> | undefined): Record<string, string> {
    const port = String(this.context.apiPort);
    return {
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      ...extra,
      HOSTNAME: this.spec.hostname ?? this.name,
      KUBERNETES_SERVICE_HOST: this.context.apiHost,
      KUBERNETES_SERVICE_PORT: port,
      KUBERNETES_SERVICE_PORT_HTTPS: port,
      KUBERNETES_PORT: `tcp://${this.context.apiHost}:${port}`,
    };
  }

  /** Starts (or restarts, `restart`) a container's process, or records why it cannot. */
  private launch(run: ContainerRun, restart: boolean): void {
    run.cancelRetry?.();
    run.cancelRetry = undefined;
    if (this.terminating) return;
    const { clock, events } = this.context;
    const image = this.context.images(run.spec.image ?? '');
    if (image === undefined) {
      run.pull = nextBackoff(run.pull, clock.now());
      run.state = { waiting: { reason: 'ErrImagePull', message: `failed to pull and unpack image "${run.spec.image}": image not known to the stand-in runtime` } };
      events.record(this.pod, 'Warning', 'Failed', `Failed to pull image "${run.spec.image}": image not known to the stand-in runtime`, this.fieldPath(run));
      events.record(this.pod, 'Warning', 'Failed', 'Error: ErrImagePull', this.fieldPath(run));
      const delay = run.pull.delayMs;
      const showBackoff = clock.after(Math.min(PULL_REPORT_MS, delay), () => {
        run.state = { waiting: { reason: 'ImagePullBackOff', message: `Back-off pulling image "${run.spec.image}"` } };
        events.record(this.pod, 'Normal', 'BackOff', `Back-off pulling image "${run.spec.image}"`, this.fieldPath(run));
        this.queueStatus();
      });
      const retry = clock.after(delay, () => this.launch(run, restart));
      run.cancelRetry = () => {
        showBackoff();
        retry();
      };
      this.queueStatus();
      return;
    }
    const mounts = this.mountsOf(run);
    let env: Record<string, string>;
    try {
      env = containerEnv(this.pod, run.spec, this.lookup(), this.baseEnv(image.env));
    } catch (error) {
      if (!(error instanceof ContainerConfigError)) throw error;
      run.state = { waiting: { reason: 'CreateContainerConfigError', message: error.message } };
      events.record(this.pod, 'Warning', 'Failed', `Error: ${error.message}`, this.fieldPath(run));
      run.cancelRetry = clock.after(RETRY_MS, () => this.launch(run, restart));
      this.queueStatus();
      return;
    }
    for (const key of Object.keys(env)) env[key] = rewritePath(env[key]!, mounts);
    const line = processLine(image, run.spec, env).map((part) => rewritePath(part, mounts));
    const cwd = run.spec.workingDir !== undefined ? rewritePath(run.spec.workingDir, mounts) : (image.workingDir ?? this.dir);

    if (restart) {
      run.restartCount++;
      run.lastState = run.state;
    }
    run.runs++;
    run.containerID = `standin://${this.uid.slice(0, 8)}-${run.spec.name}-${run.runs}`;
    events.record(this.pod, 'Normal', 'Pulled', `Container image "${run.spec.image}" already present on machine`, this.fieldPath(run));
    events.record(this.pod, 'Normal', 'Created', `Created container: ${run.spec.name}`, this.fieldPath(run));

    const child = spawn(line[0]!, line.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    run.child = child;
    run.everRan = true;
    const startedAt = this.now();
    run.state = { running: { startedAt } };
    run.ready = false;
    run.started = run.spec.startupProbe === undefined;
    child.stdout!.on('data', (chunk: Buffer) => run.log.append(chunk));
    child.stderr!.on('data', (chunk: Buffer) => run.log.append(chunk));
    let resolveExit!: () => void;
    run.exited = new Promise((resolve) => (resolveExit = resolve));
    let done = false;
    const finish = (exitCode: number, signal: number | undefined, reason: string, message?: string): void => {
      if (done) return;
      done = true;
      this.exited(run, child, { exitCode, ...(signal === undefined ? {} : { signal }), reason, ...(message === undefined ? {} : { message }), startedAt, finishedAt: this.now(), containerID: run.containerID });
      resolveExit();
    };
    child.on('error', (error) => finish(128, undefined, 'StartError', `failed to start container process: ${error.message}`));
    child.on('exit', (code, signal) => {
      const number = signal === null ? undefined : SIGNALS[signal] ?? 0;
      const exitCode = code ?? 128 + (number ?? 0);
      finish(exitCode, number, exitCode === 0 ? 'Completed' : 'Error');
    });
    if (child.pid !== undefined) {
      events.record(this.pod, 'Normal', 'Started', `Started container ${run.spec.name}`, this.fieldPath(run));
      this.startProbes(run);
    }
    this.queueStatus();
  }

  private probeTarget(run: ContainerRun): ProbeTarget {
    return {
      ip: this.ip,
      container: run.spec,
      exec: (command) => {
        const mounts = this.mountsOf(run);
        const image = this.context.images(run.spec.image ?? '');
        let env: Record<string, string> = {};
        try {
          env = containerEnv(this.pod, run.spec, this.lookup(), this.baseEnv(image?.env));
        } catch {
          // The container started with this environment; a Secret deleted since is not the probe's business.
        }
        for (const key of Object.keys(env)) env[key] = rewritePath(env[key]!, mounts);
        return { line: command.map((part) => rewritePath(part, mounts)), env, cwd: this.dir };
      },
    };
  }

  private startProbes(run: ContainerRun): void {
    const { clock, events } = this.context;
    const target = this.probeTarget(run);
    const child = run.child;
    const report = (kind: ProbeOutcome['kind'], result: ProbeResult): void => {
      if (!result.ok) events.record(this.pod, 'Warning', 'Unhealthy', `${kind} probe failed: ${result.message}`, this.fieldPath(run));
      this.context.probed({ namespace: this.namespace, pod: this.name, container: run.spec.name, kind, ok: result.ok, message: result.message });
    };
    const startMain = (): void => {
      if (run.spec.readinessProbe !== undefined) {
        const readiness = new Prober('Readiness', run.spec.readinessProbe, target, clock, (result, ready, changed) => {
          report('Readiness', result);
          if (changed && run.child === child) {
            run.ready = ready;
            this.queueStatus();
          }
        });
        run.probes.push(readiness);
        readiness.start();
      } else {
        run.ready = true;
      }
      if (run.spec.livenessProbe !== undefined) {
        const liveness = new Prober('Liveness', run.spec.livenessProbe, target, clock, (result, alive, changed) => {
          report('Liveness', result);
          if (changed && !alive) this.killForProbe(run, child, 'liveness');
        });
        run.probes.push(liveness);
        liveness.start();
      }
    };
    if (run.spec.startupProbe !== undefined) {
      const startup = new Prober('Startup', run.spec.startupProbe, target, clock, (result, started, changed) => {
        report('Startup', result);
        if (!changed || run.child !== child) return;
        if (started) {
          run.started = true;
          startMain();
          this.queueStatus();
        } else this.killForProbe(run, child, 'startup');
      });
      run.probes.push(startup);
      startup.start();
    } else startMain();
  }

  private killForProbe(run: ContainerRun, child: ChildProcess | undefined, kind: string): void {
    if (run.child !== child || this.terminating) return;
    this.context.events.record(this.pod, 'Normal', 'Killing', `Container ${run.spec.name} failed ${kind} probe, will be restarted`, this.fieldPath(run));
    void this.stopContainer(run, this.context.clock.now() + this.graceMs(), true);
  }

  private stopProbes(run: ContainerRun, keepReadiness: boolean): void {
    const keep = run.probes.filter((p) => keepReadiness && p.kind === 'Readiness');
    for (const probe of run.probes) if (!keep.includes(probe)) probe.stop();
    run.probes = keep;
  }

  /** A container's process ended: record it, then restart it as the restart policy and back-off say. */
  private exited(run: ContainerRun, child: ChildProcess, terminated: Extract<State, { terminated: unknown }>['terminated']): void {
    if (run.child !== child) return;
    run.child = undefined;
    this.stopProbes(run, false);
    run.ready = false;
    run.started = false;
    run.state = { terminated };
    if (this.terminating || this.finished || run.replacing) {
      this.queueStatus();
      return;
    }
    const policy = this.spec.restartPolicy ?? 'Always';
    if (policy === 'Never' || (policy === 'OnFailure' && terminated.exitCode === 0)) {
      this.queueStatus();
      return;
    }
    const { clock, events } = this.context;
    const now = clock.now();
    const entry = run.backoff;
    if (inBackoff(entry, now)) {
      const message = `back-off ${entry.delayMs / 1000}s restarting failed container=${run.spec.name} pod=${this.name}_${this.namespace}(${this.uid})`;
      run.lastState = run.state;
      run.state = { waiting: { reason: 'CrashLoopBackOff', message } };
      events.record(this.pod, 'Warning', 'BackOff', `Back-off restarting failed container ${run.spec.name} in pod ${this.name}_${this.namespace}(${this.uid})`, this.fieldPath(run));
      run.cancelRetry = clock.after(entry.lastUpdate + entry.delayMs - now, () => {
        run.cancelRetry = undefined;
        run.backoff = nextBackoff(run.backoff, clock.now());
        this.restart(run);
      });
      this.queueStatus();
      return;
    }
    run.backoff = nextBackoff(entry, now);
    this.restart(run);
  }

  private restart(run: ContainerRun): void {
    // The terminated state moves to lastState; a CrashLoopBackOff wait already put it there.
    if ('waiting' in run.state) run.state = run.lastState ?? run.state;
    this.launch(run, true);
  }

  /** SIGTERM to the container's process group, SIGKILL at the deadline; preStop first when asked. */
  private async stopContainer(run: ContainerRun, deadline: number, preStop: boolean): Promise<void> {
    const child = run.child;
    if (child === undefined) return;
    const { clock } = this.context;
    const hook = run.spec.lifecycle?.preStop;
    if (preStop && hook !== undefined) {
      const context = { container: run.spec, podIP: this.ip, wait: (ms: number) => this.wait(ms), exec: this.probeTarget(run).exec };
      await this.bounded(runPreStop(hook as Record<string, unknown>, context), deadline - clock.now());
    }
    if (run.child !== child) return;
    this.signal(child, 'SIGTERM');
    const remaining = Math.max(deadline - clock.now(), preStop && hook !== undefined ? MIN_GRACE_MS : 0);
    const cancelKill = clock.after(remaining, () => this.signal(child, 'SIGKILL'));
    await run.exited;
    cancelKill();
  }

  private signal(child: ChildProcess, signal: NodeJS.Signals): void {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    try {
      process.kill(-child.pid, signal);
    } catch {
      // already gone
    }
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => this.context.clock.after(ms, resolve));
  }

  private bounded(work: Promise<void>, ms: number): Promise<void> {
    let cancel = (): void => undefined;
    const timeout = new Promise<void>((resolve) => (cancel = this.context.clock.after(Math.max(0, ms), resolve)));
    return Promise.race([work, timeout]).finally(cancel);
  }

  /** The pod was deleted: stop everything gracefully, report, and delete it for good. */
  private async terminate(): Promise<void> {
    if (this.terminating) return;
    this.terminating = true;
    const { clock, events, registry, pods } = this.context;
    this.cancelRetry?.();
    for (const run of this.runs) {
      run.cancelRetry?.();
      run.cancelRetry = undefined;
      this.stopProbes(run, true);
    }
    const grace = this.pod.metadata.deletionGracePeriodSeconds ?? this.spec.terminationGracePeriodSeconds ?? 30;
    const deadline = clock.now() + grace * 1000;
    for (const run of this.runs) if (run.child !== undefined) events.record(this.pod, 'Normal', 'Killing', `Stopping container ${run.spec.name}`, this.fieldPath(run));
    await Promise.all(this.runs.map((run) => this.stopContainer(run, deadline, true)));
    for (const run of this.runs) {
      this.stopProbes(run, false);
      if (!('terminated' in run.state)) {
        const at = this.now();
        run.state = { terminated: { exitCode: 0, reason: 'ContainerStatusUnknown', message: 'The container could not be located when the pod was terminated', startedAt: at, finishedAt: at, containerID: run.containerID } };
      }
    }
    this.finished = true;
    this.writeStatusNow();
    try {
      registry.delete(pods, this.namespace, this.name, { gracePeriodSeconds: 0, preconditions: { uid: this.uid } }, { fieldManager: 'kubelet' });
    } catch (error) {
      if (!(error instanceof StatusError) || (error.code !== 404 && error.code !== 409)) throw error;
    }
    this.cleanup();
  }

  /** The pod is gone from the API (or the kubelet stops): kill at once. */
  async kill(graceMs: number): Promise<void> {
    this.terminating = true;
    this.finished = true;
    this.cancelRetry?.();
    for (const run of this.runs) {
      run.cancelRetry?.();
      this.stopProbes(run, false);
    }
    await Promise.all(this.runs.map((run) => this.stopContainer(run, this.context.clock.now() + graceMs, false)));
    this.cleanup();
  }

  /** SIGKILL everything now, synchronously (process exit). */
  killNow(): void {
    for (const run of this.runs) if (run.child !== undefined) this.signal(run.child, 'SIGKILL');
  }

  private cleanup(): void {
    if (this.dir !== '') rmSync(this.dir, { recursive: true, force: true });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Status
  // -------------------------------------------------------------------------------------------------------------

  private condition(type: string, ok: boolean): { type: string; status: string; lastTransitionTime: string; lastProbeTime: null } {
    const status = ok ? 'True' : 'False';
    const previous = this.transitions.get(type);
    const time = previous?.status === status ? previous.time : this.now();
    this.transitions.set(type, { status, time });
    return { type, status, lastProbeTime: null, lastTransitionTime: time };
  }

  private phase(): string {
    const policy = this.spec.restartPolicy ?? 'Always';
    const terminated = this.runs.filter((r) => 'terminated' in r.state && r.child === undefined && r.cancelRetry === undefined);
    const allDone = terminated.length === this.runs.length;
    if (allDone && (this.finished || policy === 'Never' || (policy === 'OnFailure' && terminated.every((r) => 'terminated' in r.state && r.state.terminated.exitCode === 0)))) {
      return terminated.every((r) => 'terminated' in r.state && r.state.terminated.exitCode === 0) ? 'Succeeded' : 'Failed';
    }
    if (this.runs.some((r) => !r.everRan)) return 'Pending';
    return 'Running';
  }

  private status(): Record<string, unknown> {
    const running = (r: ContainerRun): boolean => 'running' in r.state;
    const containersReady = this.runs.every((r) => running(r) && r.ready);
    return {
      phase: this.phase(),
      conditions: [
        this.condition('PodReadyToStartContainers', this.mounted && !this.finished),
        this.condition('Initialized', true),
        this.condition('Ready', containersReady && !this.finished),
        this.condition('ContainersReady', containersReady && !this.finished),
        this.condition('PodScheduled', true),
      ],
      hostIP: this.context.hostIP,
      hostIPs: [{ ip: this.context.hostIP }],
      podIP: this.ip,
      podIPs: [{ ip: this.ip }],
      startTime: this.startTime,
      qosClass: 'BestEffort',
      containerStatuses: this.runs.map((r) => {
        const out: Record<string, unknown> = {
          name: r.spec.name,
          image: r.spec.image,
          imageID: r.everRan ? `standin://${r.spec.image}` : '',
          ready: running(r) && r.ready,
          started: running(r) && r.started,
          restartCount: r.restartCount,
          state: r.state,
          lastState: r.lastState ?? {},
        };
        if (r.containerID !== '') out.containerID = r.containerID;
        return out;
      }),
    };
  }

  private queueStatus(): void {
    if (this.statusQueued) return;
    this.statusQueued = true;
    setImmediate(() => {
      this.statusQueued = false;
      if (!this.finished) this.writeStatusNow();
    });
  }

  private writeStatusNow(): void {
    const { registry, pods } = this.context;
    const latest = registry.find(pods, this.namespace, this.name);
    if (latest === undefined || latest.metadata.uid !== this.uid) return;
    // The pod as written is what env (status.podIP) and the downward API read from.
    this.pod = registry.commitUpdate(pods, latest, { ...latest, status: this.status() }, 'status', { fieldManager: 'kubelet' }, undefined);
  }
}
