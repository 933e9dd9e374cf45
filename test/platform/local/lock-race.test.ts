import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { deployLocal, openLocalPlatform } from '../../../orchestrator/platform/local/index.ts';
import { tempState } from './helpers.ts';

const RACER = fileURLToPath(new URL('./lock-racer.ts', import.meta.url));

interface Attempt {
  round: number;
  owner: string;
  won: boolean;
  holder?: string;
}

/** A contender process and the lines it prints, one at a time. */
class Racer {
  readonly child: ChildProcessWithoutNullStreams;
  readonly #lines: Interface;
  readonly #queued: string[] = [];
  readonly #waiting: ((line: string) => void)[] = [];
  #stderr = '';
  readonly owner: string;

  constructor(stateDir: string, owner: string) {
    this.owner = owner;
    this.child = spawn(process.execPath, [RACER, stateDir, owner]);
    this.child.stderr.on('data', (chunk: Buffer) => (this.#stderr += chunk.toString()));
    this.#lines = createInterface({ input: this.child.stdout });
    this.#lines.on('line', (line) => {
      const waiter = this.#waiting.shift();
      if (waiter === undefined) this.#queued.push(line);
      else waiter(line);
    });
    this.child.once('exit', (code) => {
      for (const waiter of this.#waiting.splice(0)) waiter(`exited with ${code}: ${this.#stderr}`);
    });
  }

  next(): Promise<string> {
    const line = this.#queued.shift();
    return line === undefined ? new Promise((resolve) => this.#waiting.push(resolve)) : Promise.resolve(line);
  }

  async attempt(): Promise<Attempt> {
    const line = await this.next();
    try {
      return JSON.parse(line) as Attempt;
    } catch {
      throw new Error(`racer ${this.owner}: ${line}`);
    }
  }

  async stop(): Promise<void> {
    this.child.stdin.end();
    if (this.child.exitCode === null) await once(this.child, 'exit');
  }
}

describe('local platform: the update lock across processes', () => {
  let state: Awaited<ReturnType<typeof tempState>>;

  beforeAll(async () => {
    state = await tempState();
    await deployLocal({ stateDir: state.dir, replicas: 1, image: 'relay:1', servicePort: 0 });
  });

  afterAll(async () => {
    await state?.cleanup();
  });

  test('two processes acquiring at the same instant: exactly one wins each round, and the loser is told who holds it', async () => {
    const racers = [new Racer(state.dir, 'alice'), new Racer(state.dir, 'bob')];
    const platform = await openLocalPlatform({ stateDir: state.dir });
    try {
      expect(await Promise.all(racers.map((racer) => racer.next()))).toEqual(['ready', 'ready']);
      for (let round = 0; round < 8; round++) {
        // Both get the round in the same turn of this event loop: they race for real.
        for (const racer of racers) racer.child.stdin.write(`${round}\n`);
        const attempts = await Promise.all(racers.map((racer) => racer.attempt()));
        const winners = attempts.filter((attempt) => attempt.won);
        expect(winners, `round ${round}: ${JSON.stringify(attempts)}`).toHaveLength(1);
        const loser = attempts.find((attempt) => !attempt.won)!;
        expect(loser.holder).toBe(winners[0]!.owner);
        expect((await platform.lock.inspect(`race-${round}`))?.owner).toBe(winners[0]!.owner);
      }
    } finally {
      await platform.close();
      await Promise.all(racers.map((racer) => racer.stop()));
    }
  });
});
