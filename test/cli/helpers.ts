import type { Clock } from '../../orchestrator/index.ts';
import type { InterruptHandler, Io, OutputStream } from '../../cli/io.ts';
import type { PlatformProvider } from '../../cli/platforms.ts';
import { run } from '../../cli/program.ts';
import { Scenario, type ScenarioOptions } from '../fakes/platform.ts';

/** A stream that keeps what was written; a terminal or not, as the test says. */
export class MemoryStream implements OutputStream {
  text = '';
  writes: string[] = [];
  readonly isTTY: boolean;
  readonly columns: number;

  constructor(options: { isTTY?: boolean; columns?: number } = {}) {
    this.isTTY = options.isTTY ?? false;
    this.columns = options.columns ?? 120;
  }

  write(chunk: string): boolean {
    this.text += chunk;
    this.writes.push(chunk);
    return true;
  }

  lines(): string[] {
    return this.text.split('\n').filter((line) => line !== '');
  }
}

export interface TestIo extends Io {
  readonly stdout: MemoryStream;
  readonly stderr: MemoryStream;
  /** Simulates Ctrl-C. */
  interrupt(): void;
}

export function memoryIo(clock: Clock, options: { stdoutTTY?: boolean; stderrTTY?: boolean; env?: Record<string, string> } = {}): TestIo {
  const handlers = new Set<InterruptHandler>();
  let count = 0;
  return {
    stdout: new MemoryStream({ isTTY: options.stdoutTTY ?? false }),
    stderr: new MemoryStream({ isTTY: options.stderrTTY ?? false }),
    env: options.env ?? {},
    clock,
    cwd: '/work/test',
    onInterrupt(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    interrupt() {
      count++;
      for (const handler of handlers) handler(count);
    },
  };
}

/** The in-memory platform double behind every command; each command is a new relayctl process. */
export function scenarioPlatforms(s: Scenario): PlatformProvider {
  return {
    open: async () => ({ platform: s.cluster.process(), close: async () => undefined }),
    local: () => Promise.reject(new Error('this test has no local platform')),
  };
}

/** A fleet `relay` of 3 relays on relay:1 (100 sessions each) and relayctl run against it on the fake clock. */
export class CliHarness {
  readonly s: Scenario;
  #ids = 0;

  constructor(options: ScenarioOptions = {}) {
    this.s = new Scenario(options);
  }

  async run(argv: string[], options: { stdoutTTY?: boolean; stderrTTY?: boolean; env?: Record<string, string>; io?: TestIo } = {}): Promise<{ code: number; io: TestIo }> {
    const io = options.io ?? memoryIo(this.s.clock, options);
    const code = await run(argv, io, { platforms: scenarioPlatforms(this.s), owner: 'alice@test', newUpdateId: () => `upd-${++this.#ids}` });
    return { code, io };
  }
}

// Any CSI sequence: colours and cursor movement.
export const ANSI = /\u001b\[/;
