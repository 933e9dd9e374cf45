import type { Clock } from '../../orchestrator/index.ts';
import type { InterruptHandler, Io, OutputStream } from '../../cli/io.ts';
import type { GlobalOptions } from '../../cli/options.ts';
import type { PlatformProvider } from '../../cli/platforms.ts';
import { run } from '../../cli/program.ts';
import { Scenario, type ScenarioOptions } from '../fakes/platform.ts';

/** A stream that keeps what was written; a terminal or not, as the test says. */
export class MemoryStream implements OutputStream {
  text = '';
  writes: string[] = [];
  readonly isTTY: boolean;
  readonly columns: number;

  readonly rows: number;

  constructor(options: { isTTY?: boolean; columns?: number; rows?: number } = {}) {
    this.isTTY = options.isTTY ?? false;
    this.columns = options.columns ?? 120;
    this.rows = options.rows ?? 200;
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

export interface MemoryIoOptions {
  stdoutTTY?: boolean;
  stderrTTY?: boolean;
  env?: Record<string, string>;
  /** Terminal size of both streams (default 120 x 200). */
  columns?: number;
  rows?: number;
  cwd?: string;
}

export function memoryIo(clock: Clock, options: MemoryIoOptions = {}): TestIo {
  const handlers = new Set<InterruptHandler>();
  let count = 0;
  const size = { ...(options.columns === undefined ? {} : { columns: options.columns }), ...(options.rows === undefined ? {} : { rows: options.rows }) };
  return {
    stdout: new MemoryStream({ isTTY: options.stdoutTTY ?? false, ...size }),
    stderr: new MemoryStream({ isTTY: options.stderrTTY ?? false, ...size }),
    env: options.env ?? {},
    clock,
    cwd: options.cwd ?? '/work/test',
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

/**
 * The in-memory platform double behind every command; each command is a new relayctl process. It stands for a
 * platform with an API server (server dry-run allowed), holding the scenario's fleet while either of its sets
 * exists; `opened` keeps the global options each command opened it with.
 */
export function scenarioPlatforms(s: Scenario, opened: GlobalOptions[] = []): PlatformProvider {
  return {
    check: async () => undefined,
    fleets: async () => ({
      names: s.cluster.set(`${s.name}-a`) !== null || s.cluster.set(`${s.name}-b`) !== null ? [s.name] : [],
      where: 'the fake cluster',
      deployCommand: (name) => `relayctl deploy${name === undefined ? '' : ` ${name}`}`,
    }),
    open: async (globals) => {
      opened.push(globals);
      return { platform: s.cluster.process(), close: async () => undefined };
    },
    local: () => Promise.reject(new Error('this test has no local platform')),
  };
}

/** A fleet `relay` of 3 relays on relay:1 (100 sessions each) and relayctl run against it on the fake clock. */
export class CliHarness {
  readonly s: Scenario;
  /** The global options of every platform the commands opened, in order. */
  readonly opened: GlobalOptions[] = [];
  #ids = 0;

  constructor(options: ScenarioOptions = {}) {
    this.s = new Scenario(options);
  }

  async run(argv: string[], options: MemoryIoOptions & { io?: TestIo } = {}): Promise<{ code: number; io: TestIo }> {
    const io = options.io ?? memoryIo(this.s.clock, options);
    const code = await run(argv, io, { platforms: scenarioPlatforms(this.s, this.opened), owner: 'alice@test', newUpdateId: () => `upd-${++this.#ids}` });
    return { code, io };
  }
}

// Any CSI sequence: colours and cursor movement.
export const ANSI = /\u001b\[/;

/**
 * A terminal of `rows` rows that interprets what the live views write (cursor up, clear line, clear below,
 * newlines; colours ignored), so tests assert what a user sees. Lines that scroll off the top go to `history`;
 * moving the cursor above the top row, which a frame taller than the terminal would need, is counted in
 * `lostCursorMoves` instead of being silently clamped.
 */
export class Screen {
  readonly rows: number;
  /** Lines that scrolled off the top. */
  readonly history: string[] = [];
  lines: string[] = [''];
  row = 0;
  lostCursorMoves = 0;

  constructor(rows: number) {
    this.rows = rows;
  }

  write(chunk: string): void {
    const tokens = chunk.split(/(\u001b\[[0-9;?]*[A-Za-z]|\n)/);
    for (const token of tokens) {
      if (token === '') continue;
      if (token === '\n') {
        this.row++;
        if (this.row >= this.lines.length) this.lines.push('');
        if (this.lines.length > this.rows) {
          this.history.push(this.lines.shift() as string);
          this.row--;
        }
        continue;
      }
      const control = /^\u001b\[([0-9;?]*)([A-Za-z])$/.exec(token);
      if (control === null) {
        this.lines[this.row] = (this.lines[this.row] ?? '') + token;
        continue;
      }
      const [, argument = '', command] = control;
      if (command === 'A') {
        const up = Number(argument || '1');
        if (up > this.row) this.lostCursorMoves++;
        this.row = Math.max(0, this.row - up);
      } else if (command === 'K') {
        this.lines[this.row] = '';
      } else if (command === 'J') {
        this.lines[this.row] = '';
        this.lines.length = this.row + 1;
      }
      // Colours and cursor visibility do not change the text.
    }
  }

  /** What is on screen, without the empty line the cursor rests on. */
  visible(): string[] {
    return this.lines.slice(0, this.lines.at(-1) === '' ? -1 : undefined);
  }
}

/** A terminal stream whose writes land on a Screen. */
export class ScreenStream extends MemoryStream {
  readonly screen: Screen;

  constructor(options: { columns?: number; rows: number }) {
    super({ isTTY: true, columns: options.columns ?? 120, rows: options.rows });
    this.screen = new Screen(options.rows);
  }

  override write(chunk: string): boolean {
    this.screen.write(chunk);
    return super.write(chunk);
  }
}
