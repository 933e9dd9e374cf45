/**
 * Pod addresses on loopback. Like pod IPs, they are derived, not configured: the state folder picks a /22 inside
 * 127.0.0.0/8 (so two local clusters on one machine rarely overlap), the set a /24 in it, the ordinal the host.
 *
 *   127.<b>.<c + slot>.<ordinal + 1>    b in 1..254 and c a multiple of 4, from a hash of the state folder path;
 *                                       slot 0 for <name>-a, 1 for <name>-b, 2-3 for any other set name.
 *
 * 127.0.0.0/24 is never used: 127.0.0.1 carries the service front, the upstream and the straggler tunnels.
 */
import { createHash } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { LocalErrorCode, LocalPlatformError } from './local-errors.ts';
import type { NetworkMode } from './state.ts';

/** The container ports of a relay pod (manifests use the same). */
export const POD_PORTS = { dtls: 5684, mgmt: 8443 } as const;
/** Host of everything that is not a pod: the service front, the upstream echo, the relays' tunnels. */
export const HOST_ADDRESS = '127.0.0.1';
/** Ordinals per set in pod-ips mode (host part 1..254). */
export const MAX_REPLICAS = 254;
export const SLOTS = 4;

export function subnetFor(stateDir: string): { b: number; c: number } {
  const digest = createHash('sha256').update(stateDir).digest();
  return { b: 1 + (digest.readUInt16BE(0) % 254), c: (digest[2]! % 64) * SLOTS };
}

/** The slot a set prefers; createSet takes the next free one if another set of the cluster holds it. */
export function preferredSlot(set: string): number {
  if (set.endsWith('-a')) return 0;
  if (set.endsWith('-b')) return 1;
  return 2 + (createHash('sha256').update(set).digest()[0]! % 2);
}

export function podAddress(subnet: { b: number; c: number }, slot: number, ordinal: number): string {
  return `127.${subnet.b}.${subnet.c + slot}.${ordinal + 1}`;
}

/** Whether this system lets us bind loopback addresses other than 127.0.0.1 (Linux yes, macOS only with aliases). */
export async function detectNetworkMode(subnet: { b: number; c: number }): Promise<NetworkMode> {
  const probe = dgram.createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.bind(0, podAddress(subnet, 0, 0), () => resolve());
    });
    return 'pod-ips';
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL') return 'shared';
    throw error;
  } finally {
    await new Promise<void>((resolve) => probe.close(() => resolve()));
  }
}

function probeUdp(address: string, port: number): Promise<number> {
  const socket = dgram.createSocket('udp4');
  return new Promise<number>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, address, () => resolve(socket.address().port));
  }).finally(() => new Promise<void>((resolve) => socket.close(() => resolve())).catch(() => undefined));
}

function probeTcp(address: string, port: number): Promise<number> {
  const server = net.createServer();
  return new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host: address, exclusive: true }, () => resolve((server.address() as net.AddressInfo).port));
  }).finally(() => new Promise<void>((resolve) => server.close(() => resolve())));
}

/**
 * Checks that a pod's DTLS (UDP) and management (TCP) ports are free, so a clash shows up as a clear error at
 * createSet rather than as a relay that dies at start.
 */
export async function checkPodPortsFree(pod: string, address: string, dtlsPort: number, mgmtPort: number, settleMs = 3_000): Promise<void> {
  const until = Date.now() + settleMs;
  for (const [kind, probe, port] of [['DTLS (udp)', probeUdp, dtlsPort], ['management (tcp)', probeTcp, mgmtPort]] as const) {
    for (;;) {
      try {
        await probe(address, port);
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        // A relay that was just killed holds its ports until the kernel has reaped it: give it a moment.
        if (code === 'EADDRINUSE' && Date.now() < until) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          continue;
        }
        throw new LocalPlatformError(
          LocalErrorCode.AddressInUse,
          `${pod}: ${kind} address ${address}:${port} is not free (${code ?? (error as Error).message}); another local cluster ` +
            'or a relay left running owns it: run teardown in that state folder, or use another state folder',
          { subject: `${address}:${port}`, cause: error },
        );
      }
    }
  }
}

/**
 * The kernel's ephemeral port range (what bind(0) hands out): Linux says; elsewhere IANA's, which BSD and macOS use.
 */
function ephemeralRange(): { low: number; high: number } {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return { low: low!, high: high! };
  } catch {
    // not Linux
  }
  return { low: 49152, high: 65535 };
}

/** Lowest port a stable port is taken from: above the well-known and the usual registered service ports. */
const STABLE_LOW = 15_000;

/**
 * A free port on `address` that stays free for us: taken from below the ephemeral range, so no socket bound to
 * port 0 (a relay's upstream socket, a device) can take it while our process is down, and a service or relay that
 * restarts binds it again. For ports that are recorded and reused: the service front, the upstream, shared-mode
 * pods. Random, then probed.
 */
export async function stablePort(kind: 'udp' | 'tcp', avoid: ReadonlySet<number>, address = HOST_ADDRESS): Promise<number> {
  const high = Math.min(ephemeralRange().low, 32_768) - 1;
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = STABLE_LOW + Math.floor(Math.random() * (high - STABLE_LOW + 1));
    if (avoid.has(port)) continue;
    try {
      await (kind === 'udp' ? probeUdp(address, port) : probeTcp(address, port));
      return port;
    } catch {
      // taken: try another
    }
  }
  throw new LocalPlatformError(LocalErrorCode.AddressInUse, `no free ${kind} port on ${address} between ${STABLE_LOW} and ${high} after 50 attempts`);
}
