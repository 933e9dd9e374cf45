import {
  FORWARD_STEPS,
  ROLLBACK_STEPS,
  Reason,
  type Command,
  type Direction,
  type PodPhase,
  type RelayState,
  type RunResult,
  type RunStep,
  type UpdateEvent,
} from '../../orchestrator/index.ts';

/**
 * What the progress renderers draw, folded from the orchestrator's events: the steps with their state, a row per
 * pod, and the sessions moved so far. Both the in-place view and the line-per-change output read this one model,
 * so they never disagree.
 */

export type StepStatus = 'pending' | 'running' | 'done' | 'failed';

export interface StepRow {
  step: RunStep;
  direction: Direction;
  status: StepStatus;
  durationMs: number | null;
  /** Why the step failed, or that an earlier run did it. */
  note: string | null;
  /** What the running step waits for now, oldest first: one per ordinal (or the whole step), each gone once it happened. */
  waits: WaitNote[];
}

export interface WaitNote {
  /** The ordinal waiting, or null for the step as a whole. */
  ordinal: number | null;
  /** Reason constant of the wait (orchestrator status.ts), or 'Retry'. */
  reason: string;
  text: string;
}

/**
 * Waits whose message describes a pod's state ("relay-b-0 is Pending, not running yet"): the orchestrator says
 * again when it still waits after that pod changed, so a change of the pod ends them. The other waits (readiness
 * of both pods, a restore in flight) end when their ordinal moved or the step ended.
 */
const ENDED_BY_POD_CHANGE: readonly string[] = [Reason.PodNotRunning, Reason.RelayUnreachable, Reason.TargetNotAwaitingRestore, Reason.PodsTerminating];

export interface PodRow {
  name: string;
  set: string;
  ordinal: number;
  phase: PodPhase | 'Gone';
  ready: boolean;
  relayState: RelayState | null;
  sessions: number | null;
  /** Sessions this pod handed to its double. */
  handedOver: number | null;
  /** Sessions this pod took from its double. */
  received: number | null;
  /** The latest of the two: after a rollback an old pod first handed over, then received back. */
  lastMove: 'out' | 'in' | null;
  /** Stragglers this pod tunnelled to the new owner after handing over. */
  forwarded: number | null;
}

export interface MovedSessions {
  moved: number;
  total: number;
}

function plannedSteps(command: Command): StepRow[] {
  const recorded = command === 'update' ? FORWARD_STEPS : ROLLBACK_STEPS;
  const direction: Direction = command === 'update' ? 'forward' : 'rollback';
  return [
    row('lock', 'forward'),
    row('preflight', 'forward'),
    ...recorded.map((step) => row(step, direction)),
    row('release', direction),
  ];
}

function row(step: RunStep, direction: Direction): StepRow {
  return { step, direction, status: 'pending', durationMs: null, note: null, waits: [] };
}

const UNRECORDED: readonly RunStep[] = ['preflight', 'lock', 'release'];

export class ProgressModel {
  command: Command | null = null;
  name: string | null = null;
  platform: string | null = null;
  updateId: string | null = null;
  /** Time of the first event; elapsed times count from here. */
  startedAt: number | null = null;
  /** Time of the last event. */
  lastAt: number | null = null;
  direction: Direction = 'forward';
  steps: StepRow[] = [];
  readonly pods = new Map<string, PodRow>();
  /** Warnings and errors, oldest first. */
  readonly notes: { at: number; level: 'warning' | 'error'; text: string; repeats: number }[] = [];
  result: RunResult | null = null;
  #sourceSet: string | null = null;
  #moved = new Map<string, number>();

  apply(event: UpdateEvent): void {
    this.startedAt ??= event.at;
    this.lastAt = event.at;
    if (event.updateId !== null) this.updateId = event.updateId;
    switch (event.type) {
      case 'run-started':
        this.command = event.command;
        this.name = event.name;
        this.platform = event.platform;
        this.steps = plannedSteps(event.command);
        this.direction = event.command === 'update' ? 'forward' : 'rollback';
        break;
      case 'run-resumed':
        this.#resume(event.step, event.direction);
        break;
      case 'step-started': {
        const step = this.#stepRow(event.step, event.direction);
        step.status = 'running';
        step.note = null;
        step.waits = [];
        if (!UNRECORDED.includes(event.step)) this.direction = event.direction;
        break;
      }
      case 'step-finished': {
        const step = this.#stepRow(event.step, event.direction);
        step.status = 'done';
        step.durationMs = event.durationMs;
        step.note = null;
        step.waits = [];
        break;
      }
      case 'waiting': {
        const text = event.ordinal === null || event.message.startsWith(`ordinal ${event.ordinal}:`) ? event.message : `ordinal ${event.ordinal}: ${event.message}`;
        this.#waitRunning(event.step, { ordinal: event.ordinal, reason: event.reason, text });
        break;
      }
      case 'retry': {
        const pod = event.operation.split(' ').at(-1) ?? '';
        this.#waitRunning(event.step, { ordinal: this.#ordinalOf(pod), reason: 'Retry', text: `retry ${event.attempt} of ${event.operation}: ${event.error.message}` });
        break;
      }
      case 'warning':
        this.#note(event.at, 'warning', event.message);
        break;
      case 'error': {
        this.#note(event.at, 'error', `${event.step}: ${event.error.message}`);
        const step = this.steps.find((candidate) => candidate.step === event.step && candidate.status === 'running');
        if (step !== undefined) {
          step.status = 'failed';
          step.note = event.error.message;
          step.waits = [];
        }
        break;
      }
      case 'rollback-started':
        this.#startRollback();
        break;
      case 'pod-changed': {
        const pod = this.#podRow(event.pod, event.set, event.ordinal);
        if (pod.phase !== event.phase || pod.ready !== event.ready || pod.relayState !== event.relayState) {
          this.#endWaits((wait) => ENDED_BY_POD_CHANGE.includes(wait.reason) && (wait.ordinal === event.ordinal || wait.text.includes(event.pod)));
        }
        pod.phase = event.phase;
        pod.ready = event.ready;
        pod.relayState = event.relayState;
        // A relay we could not read keeps its last known count.
        if (event.sessions !== null || event.phase === 'Gone') pod.sessions = event.sessions;
        break;
      }
      case 'ordinal-moved': {
        const sessions = event.sessions ?? 0;
        const source = this.pods.get(event.source);
        const target = this.pods.get(event.target);
        // Session counts themselves come from pod-changed events (the relays' own figures).
        if (source !== undefined) {
          source.handedOver = sessions;
          source.lastMove = 'out';
          this.#sourceSet = source.set;
        }
        if (target !== undefined) {
          target.received = sessions;
          target.lastMove = 'in';
        }
        this.#moved.set(`${event.direction}/${event.ordinal}`, sessions);
        this.#endWaits((wait) => wait.ordinal === event.ordinal);
        break;
      }
      case 'drain-progress': {
        const pod = this.pods.get(event.pod);
        if (pod !== undefined) pod.forwarded = event.forwardedDatagrams;
        break;
      }
      case 'run-finished':
        this.result = event.result;
        this.#markDeleted(event.result);
        for (const step of this.steps) {
          if (step.status === 'running') step.status = event.result.code === 'succeeded' ? 'done' : 'failed';
        }
        break;
      case 'labels-changed': {
        // The relabelling a wait announced is done; what comes next (a restore) has no wait of its own.
        const ordinal = this.#ordinalOf(event.pod);
        this.#endWaits((wait) => wait.ordinal !== null && wait.ordinal === ordinal);
        break;
      }
      case 'condition':
        break;
    }
  }

  /** Stragglers forwarded by pods that still exist. */
  stragglers(): number {
    return [...this.pods.values()].reduce((sum, pod) => sum + (pod.phase === 'Gone' ? 0 : (pod.forwarded ?? 0)), 0);
  }

  get finished(): boolean {
    return this.result !== null;
  }

  /** Pods ordered by set, then ordinal. */
  podRows(): PodRow[] {
    return [...this.pods.values()].sort((x, y) => x.set.localeCompare(y.set) || x.ordinal - y.ordinal);
  }

  /** Sessions moved in the current direction out of those there are to move; null before a handover starts. */
  movedSessions(): MovedSessions | null {
    const started = this.steps.some((step) => (step.step === 'handover' || step.step === 'handback') && step.status !== 'pending');
    if (!started && this.#moved.size === 0) return null;
    const source = this.#sourceSet ?? this.#busiestSet();
    if (source === null) return null;
    let moved = 0;
    for (const [key, sessions] of this.#moved) if (key.startsWith(`${this.direction}/`)) moved += sessions;
    let waiting = 0;
    for (const pod of this.pods.values()) {
      if (pod.set === source && pod.handedOver === null && pod.phase !== 'Gone') waiting += pod.sessions ?? 0;
    }
    return { moved, total: moved + waiting };
  }

  /** `a` for `relay-a`: the set's letter, short enough for one status line. */
  shortSet(set: string): string {
    return this.name !== null && set.startsWith(`${this.name}-`) ? set.slice(this.name.length + 1) : set;
  }

  /**
   * One line with everything that matters now, e.g. `a: 3 ready  b: 2 of 3 ready  sessions handed over 2816/4000`.
   * The plain renderer prints it whenever it changes (without the straggler count, which changes on every poll
   * of a drain).
   */
  summaryLine(options: { stragglers?: boolean } = {}): string {
    const parts: string[] = [];
    const sets = [...new Set(this.podRows().map((pod) => pod.set))];
    for (const set of sets) {
      const pods = [...this.pods.values()].filter((pod) => pod.set === set && pod.phase !== 'Gone');
      const label = this.shortSet(set);
      if (pods.length === 0) {
        parts.push(`${label}: gone`);
        continue;
      }
      const ready = pods.filter((pod) => pod.ready).length;
      const pending = pods.filter((pod) => pod.phase !== 'Running').length;
      let text = ready === pods.length ? `${label}: ${ready} ready` : `${label}: ${ready} of ${pods.length} ready`;
      if (pending > 0) text += ` (${pending} starting)`;
      parts.push(text);
    }
    const moved = this.movedSessions();
    if (moved !== null) {
      parts.push(`sessions ${this.direction === 'forward' ? 'handed over' : 'handed back'} ${moved.moved}/${moved.total}`);
    }
    const forwarded = this.stragglers();
    if (forwarded > 0 && options.stragglers !== false) parts.push(`stragglers forwarded ${forwarded}`);
    return parts.join('  ');
  }

  #stepRow(step: RunStep, direction: Direction): StepRow {
    const unrecorded = UNRECORDED.includes(step);
    let found = this.steps.find((candidate) => candidate.step === step && (unrecorded || candidate.direction === direction));
    if (found === undefined) {
      found = row(step, direction);
      const release = this.steps.findIndex((candidate) => candidate.step === 'release');
      if (release >= 0 && step !== 'release') this.steps.splice(release, 0, found);
      else this.steps.push(found);
    }
    return found;
  }

  /** A wait of the running step: replaces the one of the same ordinal. */
  #waitRunning(step: RunStep, wait: WaitNote): void {
    const running = this.steps.find((candidate) => candidate.step === step && candidate.status === 'running');
    if (running === undefined) return;
    running.waits = [...running.waits.filter((open) => open.ordinal !== wait.ordinal), wait];
  }

  #endWaits(ended: (wait: WaitNote) => boolean): void {
    for (const step of this.steps) {
      if (step.status === 'running' && step.waits.some(ended)) step.waits = step.waits.filter((wait) => !ended(wait));
    }
  }

  #ordinalOf(pod: string): number | null {
    const known = this.pods.get(pod);
    if (known !== undefined) return known.ordinal;
    const match = /-(\d+)$/.exec(pod);
    return match === null ? null : Number(match[1]);
  }

  /** A rerun picks up at `step`: the recorded steps before it were done by an earlier run. */
  #resume(step: string, direction: Direction): void {
    if (direction === 'rollback') this.#startRollback();
    const recorded: readonly string[] = direction === 'forward' ? FORWARD_STEPS : ROLLBACK_STEPS;
    const index = recorded.indexOf(step);
    for (const candidate of this.steps) {
      const position = recorded.indexOf(candidate.step);
      if (candidate.direction === direction && position >= 0 && position < index && candidate.status === 'pending') {
        candidate.status = 'done';
        candidate.note = 'earlier run';
      }
    }
  }

  #startRollback(): void {
    this.direction = 'rollback';
    // The forward steps after the one that stopped will not run.
    const reached = this.steps.reduce((last, step, index) => (step.direction === 'forward' && step.status !== 'pending' ? index : last), -1);
    this.steps = this.steps.filter(
      (step, index) => !(index > reached && step.direction === 'forward' && step.status === 'pending' && !UNRECORDED.includes(step.step)),
    );
    for (const step of ROLLBACK_STEPS) this.#stepRow(step, 'rollback');
    const release = this.steps.find((step) => step.step === 'release');
    if (release !== undefined) release.direction = 'rollback';
  }

  /** Repeats of the last note (an operation failing on each attempt) are counted, not listed again. */
  #note(at: number, level: 'warning' | 'error', text: string): void {
    const last = this.notes.at(-1);
    if (last !== undefined && last.level === level && last.text === text) {
      last.repeats++;
      return;
    }
    this.notes.push({ at, level, text, repeats: 1 });
  }

  /** A run that got to `done` deleted a set (the old one forward, the new one in a rollback) even if the last poll still listed its pods. */
  #markDeleted(result: RunResult): void {
    const record = result.record;
    if (record === null || record.step !== 'done' || result.code === 'lock-held' || result.code === 'refused') return;
    if (result.code === 'succeeded' && result.outcome === 'already-updated') return;
    const deleted = record.direction === 'forward' ? record.from : record.to;
    for (const pod of this.pods.values()) {
      if (pod.set !== deleted) continue;
      pod.phase = 'Gone';
      pod.ready = false;
      pod.relayState = null;
      pod.sessions = null;
    }
  }

  #podRow(name: string, set: string, ordinal: number): PodRow {
    let pod = this.pods.get(name);
    if (pod === undefined) {
      pod = { name, set, ordinal, phase: 'Pending', ready: false, relayState: null, sessions: null, handedOver: null, received: null, lastMove: null, forwarded: null };
      this.pods.set(name, pod);
    }
    return pod;
  }

  #busiestSet(): string | null {
    const totals = new Map<string, number>();
    for (const pod of this.pods.values()) totals.set(pod.set, (totals.get(pod.set) ?? 0) + (pod.sessions ?? 0));
    let best: string | null = null;
    for (const [set, total] of totals) if (best === null || total > (totals.get(best) ?? 0)) best = set;
    return best;
  }
}
