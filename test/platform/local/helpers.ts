import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listJson } from '../../../orchestrator/platform/local/state-fs.ts';
import { localPaths, readPod, readService } from '../../../orchestrator/platform/local/state.ts';
import { exited } from '../../../orchestrator/platform/local/processes.ts';
import { teardownLocal } from '../../../orchestrator/platform/local/index.ts';

/** Every pid the local cluster of `stateDir` records (relays and the service). */
export async function recordedPids(stateDir: string): Promise<number[]> {
  const paths = localPaths(stateDir);
  const pids: number[] = [];
  for (const name of await listJson(paths.pods)) {
    const pod = await readPod(paths, name);
    if (pod?.pid != null) pids.push(pod.pid);
  }
  const service = await readService(paths);
  if (service !== null) pids.push(service.pid);
  return pids;
}

/** Whether `pid` still runs: not gone and not a zombie (relays this test process started are reaped late). */
export function running(pid: number): boolean {
  return !exited(pid);
}

export function alivePids(pids: readonly number[]): number[] {
  return pids.filter((pid) => running(pid));
}

/** A temp state folder; `cleanup` tears the cluster down (even a half-deployed one) and removes the folder. */
export async function tempState(): Promise<{ dir: string; cleanup(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'relayctl-local-'));
  return {
    dir,
    async cleanup() {
      try {
        await teardownLocal({ stateDir: dir, graceMs: 3_000 });
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  };
}
