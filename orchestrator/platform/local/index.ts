/**
 * The local platform: the embedded default for a first run and for tests. "Pods" are relayd processes on loopback
 * addresses, a "StatefulSet" is a named group of them, a service process with a sticky UDP front stands in for the
 * Kubernetes Service, and the cluster's state lives in a state folder shared by every relayctl process.
 * See cluster.ts (deploy, info, teardown), local-platform.ts (the Platform), state.ts (the folder's layout).
 */
import { LocalPlatform, type LocalPlatformOptions } from './local-platform.ts';
import type { LocalOptions } from './cluster.ts';

export { deployLocal, localClusterInfo, teardownLocal, DEFAULT_AFFINITY_MS, DEFAULT_NAME, DEFAULT_SERVICE_PORT } from './cluster.ts';
export type { DeployNotice, DeployOptions, LocalClusterInfo, LocalOptions } from './cluster.ts';
export { LocalPlatform, type LocalPlatformOptions } from './local-platform.ts';
export { LocalErrorCode, LocalPlatformError, isLocalPlatformError } from './local-errors.ts';
export type { NetworkMode } from './state.ts';

/**
 * The Platform of the cluster deployed in `options.stateDir`, for update, status, abort and rollback. Throws
 * ERR_LOCAL_NOT_DEPLOYED when there is none, ERR_LOCAL_OTHER_FLEET when it runs another base name. Call close()
 * when done: it holds keep-alive connections to the relays.
 */
export function openLocalPlatform(options: LocalOptions & LocalPlatformOptions): Promise<LocalPlatform> {
  return LocalPlatform.open(options.stateDir, options);
}
