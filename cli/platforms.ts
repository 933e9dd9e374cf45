import type { Platform } from '../orchestrator/index.ts';
import type { DeployOptions, LocalClusterInfo, LocalOptions } from '../orchestrator/platform/local/index.ts';
import type { GlobalOptions } from './options.ts';

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

export interface PlatformProvider {
  /** The platform the orchestrator drives. */
  open(globals: GlobalOptions): Promise<OpenedPlatform>;
  /** Deploy, inspect and tear down a local cluster (deploy, teardown, demo). */
  local(): Promise<LocalPlatformModule>;
}

export const defaultPlatforms: PlatformProvider = {
  async open(globals) {
    const local = await loadLocalPlatform();
    const platform = await local.openLocalPlatform({ stateDir: globals.stateDir, name: globals.name });
    return { platform, close: () => platform.close() };
  },
  local: loadLocalPlatform,
};
