/**
 * relayctl's update in a process of its own, killed (SIGKILL, as `kill -9` would) at an exact point: right after it
 * wrote a given state file for the first time. Run by create-killed.test.ts:
 *   node update-child.ts <stateDir> <image> <file the kill follows, e.g. pods/relay-b-0.json>
 * Prints the run's events as JSON lines. Its lease lasts 3 s, so a rerun does not wait out the default 30 s.
 */
import fs from 'node:fs/promises';
import { runUpdate } from '../../../orchestrator/index.ts';
import { openLocalPlatform } from '../../../orchestrator/platform/local/index.ts';

const [stateDir, image, killAfter] = process.argv.slice(2);
if (stateDir === undefined || image === undefined || killAfter === undefined) throw new Error('usage: update-child.ts <stateDir> <image> <file>');

// Every state file is written by a rename onto it (atomic-files.ts): the kill follows the first such rename.
const rename = fs.rename;
fs.rename = async (from, to) => {
  await rename(from, to);
  if (String(to).endsWith(`/${killAfter}`)) process.kill(process.pid, 'SIGKILL');
};

const platform = await openLocalPlatform({ stateDir });
await runUpdate({ name: 'relay', image, owner: 'killed-run', lockTtlMs: 3_000 }, platform, (event) => process.stdout.write(`${JSON.stringify(event)}\n`));
await platform.close();
