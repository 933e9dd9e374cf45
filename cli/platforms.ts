import type { Platform } from '../orchestrator/index.ts';
import type { DeployOptions, LocalClusterInfo, LocalOptions } from '../orchestrator/platform/local/index.ts';
import { SERVER_DRY_RUN_UNAVAILABLE, UsageError } from './errors.ts';
import { DEFAULT_NAME, checkStateDir, type GlobalOptions } from './options.ts';

/**
 * Chooses the platform behind --platform. Only the local platform exists in this build (options.ts refuses
 * kubernetes before anything runs). The local module is loaded on first use so `--help` stays fast.
 */

export type { LocalClusterInfo, LocalOptions };

/** What the CLI needs of orchestrator/platform/local/index.ts (narrow, so tests can stand in for it). */
export interface LocalPlatformModule {
  /** The returned platform holds keep-alive connections to the relays until closed. */
  openLocalPlatform(options: LocalOptions): Promise<Platform & { close(): Promise<void> }>;
  deployLocal(options: DeployOptions): Promise<LocalClusterInfo>;
  localClusterInfo(options: LocalOptions): Promise<LocalClusterInfo | null>;
  teardownLocal(options: LocalOptions): Promise<void>;
}

export async function loadLocalPlatform(): Promise<LocalPlatformModule> {
  return import('../orchestrator/platform/local/index.ts');
}

/** A platform and how to let go of it (connections, agents) when the command is done. */
export interface OpenedPlatform {
  platform: Platform;
  close(): Promise<void>;
}

/** The fleets that exist where the global flags point (a state folder, a namespace). */
export interface FleetListing {
  names: string[];
  /** Where that is, for messages: `state dir /home/a/.relayctl`, `namespace prod of context ci`. */
  where: string;
  /** The command that deploys fleet `name` (default: the default name) there. */
  deployCommand(name?: string): string;
}

export interface PlatformProvider {
  /**
   * Refuses, before anything is read, what the platform cannot do with these flags (a --state-dir that is a
   * file, --dry-run=server without an API server).
   */
  check(globals: GlobalOptions): Promise<void>;
  /** Which fleets exist, for the commands that default to the current one (fleet.ts). */
  fleets(globals: GlobalOptions): Promise<FleetListing>;
  /**
   * The platform the orchestrator drives, for fleet `globals.name`. With `globals.dryRun === 'server'` a
   * platform sends its writes with dryRun=All (Kubernetes); one that cannot refuses in check().
   */
  open(globals: GlobalOptions): Promise<OpenedPlatform>;
  /** Deploy, inspect and tear down a local cluster (deploy, teardown, demo, bench). */
  local(): Promise<LocalPlatformModule>;
}

export const defaultPlatforms: PlatformProvider = {
  async check(globals) {
    await checkStateDir(globals.stateDir);
    if (globals.dryRun === 'server') throw new UsageError(SERVER_DRY_RUN_UNAVAILABLE);
  },
  async fleets(globals) {
    const local = await loadLocalPlatform();
    // One fleet per state folder: the one deploy recorded there.
    const info = await local.localClusterInfo({ stateDir: globals.stateDir });
    const stateDirFlag = globals.stateDirGiven ? ` --state-dir ${globals.stateDir}` : '';
    return {
      names: info === null ? [] : [info.name],
      where: `state dir ${globals.stateDir}`,
      deployCommand: (name) => `relayctl deploy${name === undefined || name === DEFAULT_NAME ? '' : ` ${name}`}${stateDirFlag}`,
    };
  },
  async open(globals) {
    const local = await loadLocalPlatform();
    const platform = await local.openLocalPlatform({ stateDir: globals.stateDir, name: globals.name });
    return { platform, close: () => platform.close() };
  },
  local: loadLocalPlatform,
};
