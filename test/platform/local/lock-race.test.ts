import { spawn } from 'node:child_process';
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

function race(stateDir: string, owner: string, startAt: number, rounds: number, gapMs: number): Promise<Attempt[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RACER, stateDir, owner, String(startAt), String(rounds), String(gapMs)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`racer ${owner} exited with ${code}: ${err}`));
      else resolve(out.trim().split('\n').map((line) => JSON.parse(line) as Attempt));
    });
  });
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
    const rounds = 8;
    // Room for both processes to start (Node, TypeScript, PKI load) before the first round.
    const startAt = Date.now() + 2_500;
    const [alice, bob] = await Promise.all([race(state.dir, 'alice', startAt, rounds, 150), race(state.dir, 'bob', startAt, rounds, 150)]);
    expect(alice).toHaveLength(rounds);
    expect(bob).toHaveLength(rounds);
    const platform = await openLocalPlatform({ stateDir: state.dir });
    try {
      for (let round = 0; round < rounds; round++) {
        const attempts = [alice[round]!, bob[round]!];
        const winners = attempts.filter((attempt) => attempt.won);
        expect(winners, `round ${round}: ${JSON.stringify(attempts)}`).toHaveLength(1);
        const loser = attempts.find((attempt) => !attempt.won)!;
        expect(loser.holder).toBe(winners[0]!.owner);
        expect((await platform.lock.inspect(`race-${round}`))?.owner).toBe(winners[0]!.owner);
      }
    } finally {
      await platform.close();
    }
  });
});
