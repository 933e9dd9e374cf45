import type { Logger } from 'pino';
import type { RelayState } from '../../api/management.ts';
import type { ManagementClient } from '../../api/management-client.ts';
import type { DtlsAdapter } from '../dtls/adapter.ts';
import type { PeerAddress, Via } from '../session/session.ts';
import type { Frame } from './tunnel-codec.ts';
import type { TunnelEnd } from './tunnel.ts';

/** What the handover roles need from the relay that hosts them (implemented by Relay). */
export interface HandoverHost {
  readonly podName: string;
  readonly state: RelayState;
  readonly log: Logger;
  readonly adapter: DtlsAdapter;
  readonly tunnel: TunnelEnd;
  readonly tunnelPort: number;
  /** The tunnel's address when bound to one (not a wildcard). */
  readonly tunnelHost: string | null;
  readonly peers: ManagementClient;
  /** Old side: whether sessions are on offer to a sibling's claim (they may be leaving: not to be snapshotted yet). */
  readonly offering: boolean;
  /** Old side: resolves once no session is on offer (each offer ends when settled, or times out). */
  offersClosed(): Promise<void>;
  /** Old side: stop processing; queue what arrives. */
  pause(reason: string): void;
  /** Old side: serve again; replays the queue locally. Returns how many items were replayed. */
  resume(reason: string): number;
  /** Old side: hand the sessions over for good; forward the queue and all later traffic. Returns the number forwarded. */
  commitHandover(successor: string): number;
  /** Old side: a record the successor wants sent to a device from this relay's socket. */
  sendToDevice(datagram: Buffer, peer: PeerAddress): void;
  /** New side: enter or leave the restoring state. */
  setRestoring(reason: string): void;
  /** `staged`: how many sessions the failed import held at most (their memory is garbage now). */
  finishRestore(outcome: { ok: true } | { ok: false; previous: RelayState; reason: string; staged: number }): void;
  /** New side: a frame from the predecessor's tunnel; `via` is the route of the sessions it restored. */
  onPredecessorFrame(frame: Frame, via: Via): void;
}
