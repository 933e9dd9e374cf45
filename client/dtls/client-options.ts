import type { KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { deviceKeyFrom, loadPublicKey, type DeviceKey, type KeyInput } from '../keys.ts';
import { DtlsClientError } from './errors.ts';
import type { ClientCredential } from './handshake.ts';

export interface DtlsClientOptions {
  readonly host: string;
  readonly port: number;
  /** The relay's pinned public key: KeyObject, SPKI DER or PEM. */
  readonly serverPublicKey: KeyInput;
  /**
   * The device key (KeyObject, PEM, DER, or a DeviceKey to skip re-deriving the SPKI), or null to send an
   * empty Certificate. Required so that an unauthenticated session is always a deliberate choice.
   */
  readonly clientKey: KeyInput | DeviceKey | null;
  /** Local address to bind, e.g. 127.x.y.z to spread many devices over loopback addresses. */
  readonly localAddress?: string;
  readonly localPort?: number;
  /** Overall deadline for connect(), from the call until the server Finished. Default 30 s. */
  readonly handshakeTimeoutMs?: number;
  /** First retransmission timeout; it doubles on each retransmission of the same flight. Default 1 s. */
  readonly retransmitInitialMs?: number;
  /** Ceiling of the doubling. Default 60 s (RFC 6347 4.2.4.1). */
  readonly retransmitMaxMs?: number;
  /** Timer-driven retransmissions of one flight before the handshake fails. Default 6. */
  readonly maxRetransmissions?: number;
}

export interface ResolvedOptions {
  readonly host: string;
  readonly port: number;
  readonly serverPublicKey: KeyObject;
  readonly credential: ClientCredential | null;
  readonly deviceId: string | null;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  readonly handshakeTimeoutMs: number;
  readonly retransmitInitialMs: number;
  readonly retransmitMaxMs: number;
  readonly maxRetransmissions: number;
}

/** Checks every option once, naming the bad one, and fills the defaults in one place. */
export function resolveOptions(options: DtlsClientOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object') throw invalidOption('options', 'must be an object');
  const { host, port } = options;
  if (typeof host !== 'string' || host.length === 0) throw invalidOption('host', 'must be a non-empty string');
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalidOption('port', 'must be an integer 1..65535');
  if (options.serverPublicKey === undefined || options.serverPublicKey === null) {
    throw invalidOption('serverPublicKey', 'is required: the client pins the relay key');
  }
  if (options.clientKey === undefined) {
    throw invalidOption('clientKey', 'is required: pass a key, or null for an unauthenticated device');
  }
  if (options.localAddress !== undefined && isIP(options.localAddress) === 0) {
    throw invalidOption('localAddress', 'must be an IP address');
  }
  if (options.localPort !== undefined && (!Number.isInteger(options.localPort) || options.localPort < 0
    || options.localPort > 65535)) {
    throw invalidOption('localPort', 'must be an integer 0..65535');
  }
  const positive = (name: keyof DtlsClientOptions, value: number | undefined, fallback: number): number => {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw invalidOption(name, 'must be a positive number');
    return value;
  };
  const maxRetransmissions = options.maxRetransmissions ?? 6;
  if (!Number.isInteger(maxRetransmissions) || maxRetransmissions < 0) {
    throw invalidOption('maxRetransmissions', 'must be a non-negative integer');
  }

  const device = options.clientKey === null ? null : asDeviceKey(options.clientKey);
  return {
    host,
    port,
    serverPublicKey: loadPublicKey(options.serverPublicKey),
    credential: device === null ? null : { privateKey: device.privateKey, spki: device.spki },
    deviceId: device?.id ?? null,
    localAddress: options.localAddress,
    localPort: options.localPort,
    handshakeTimeoutMs: positive('handshakeTimeoutMs', options.handshakeTimeoutMs, 30_000),
    retransmitInitialMs: positive('retransmitInitialMs', options.retransmitInitialMs, 1_000),
    retransmitMaxMs: positive('retransmitMaxMs', options.retransmitMaxMs, 60_000),
    maxRetransmissions,
  };
}

function asDeviceKey(input: KeyInput | DeviceKey): DeviceKey {
  if (typeof input === 'object' && !Buffer.isBuffer(input) && 'spki' in input && 'privateKey' in input) return input;
  return deviceKeyFrom(input as KeyInput);
}

function invalidOption(name: string, problem: string): DtlsClientError {
  return new DtlsClientError('ERR_DTLS_INVALID_OPTION', `option ${name} ${problem}`);
}
