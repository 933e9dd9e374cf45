/**
 * Where the benchmark's devices connect: the local cluster's service (address and pinned key from its state
 * folder) or any address with the server key from a file, checked with one handshake before any worker starts
 * so that a wrong key or an empty address fails in seconds with a message that says which.
 */
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { DtlsClient, generateDeviceKey, isDtlsClientError, loadPublicKey, spkiDer } from '../../client/index.ts';
import { UsageError } from '../errors.ts';
import { ExitCode } from '../exit-codes.ts';
import type { LocalPlatformModule } from '../platforms.ts';

export interface BenchTarget {
  host: string;
  port: number;
  /** SPKI DER. */
  serverPublicKey: Buffer;
  /** Where the key came from, for messages. */
  keySource: string;
  kind: 'local' | 'address';
}

export type BenchErrorCode = 'ERR_BENCH_KEY_MISMATCH' | 'ERR_BENCH_NO_ANSWER' | 'ERR_BENCH_HANDSHAKE';

/** The target cannot be benchmarked; `exitCode` says whose side it is on (a wrong flag: usage). */
export class BenchError extends Error {
  override readonly name = 'BenchError';
  readonly code: BenchErrorCode;
  readonly exitCode: ExitCode;

  constructor(code: BenchErrorCode, message: string, exitCode: ExitCode, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.exitCode = exitCode;
  }
}

/** host:port, IPv6 as [::1]:5684. */
export function parseHostPort(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(value.trim());
  const port = Number(match?.[3]);
  if (match === null || port < 1 || port > 65535) throw new UsageError(`--target: expected host:port (e.g. 127.0.0.1:5684 or [::1]:5684), got "${value}"`);
  const host = match[1] ?? match[2]!;
  if (match[1] !== undefined && isIP(host) !== 6) throw new UsageError(`--target: "${host}" in brackets is not an IPv6 address`);
  return { host, port };
}

/** The server key as SPKI DER from a file holding SPKI DER or PEM. */
export async function readServerKey(file: string): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (error) {
    throw new UsageError(`--server-key ${file}: cannot read it (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  try {
    const text = bytes.toString('latin1');
    return spkiDer(loadPublicKey(text.includes('-----BEGIN') ? text : bytes));
  } catch (error) {
    throw new UsageError(`--server-key ${file}: not a P-256 public key as SPKI DER or PEM (${(error as Error).message})`);
  }
}

export async function localTarget(local: LocalPlatformModule, options: { stateDir: string; name: string }): Promise<BenchTarget> {
  const info = await local.localClusterInfo(options);
  if (info === null) throw new UsageError(`no local cluster in ${options.stateDir}: run "relayctl deploy" first, or benchmark another address with --target and --server-key`);
  if (!info.serviceRunning) throw new UsageError(`the service process of the local cluster in ${options.stateDir} is not running: run "relayctl deploy" to start it again`);
  return { host: info.service.address, port: info.service.port, serverPublicKey: info.serverPublicKey, keySource: `the local cluster's key in ${options.stateDir}`, kind: 'local' };
}

/** One handshake with a fresh device key; throws a BenchError saying what is wrong. */
export async function probeTarget(target: BenchTarget, timeoutMs: number): Promise<void> {
  const where = `${target.host}:${target.port}`;
  const client = new DtlsClient({ host: target.host, port: target.port, serverPublicKey: target.serverPublicKey, clientKey: generateDeviceKey(), handshakeTimeoutMs: timeoutMs });
  try {
    await client.connect();
  } catch (error) {
    const code = isDtlsClientError(error) ? error.code : null;
    if (code === 'ERR_DTLS_BAD_SERVER_SIGNATURE' || code === 'ERR_DTLS_BAD_SERVER_KEY_EXCHANGE') {
      throw new BenchError(
        'ERR_BENCH_KEY_MISMATCH',
        `the server at ${where} does not hold the key of ${target.keySource}: its handshake signature does not verify against that key (${code}). ` +
          'Give the key the relays serve with (SPKI DER or PEM).',
        ExitCode.Usage,
        error,
      );
    }
    if (code === 'ERR_DTLS_HANDSHAKE_TIMEOUT') {
      throw new BenchError('ERR_BENCH_NO_ANSWER', `no DTLS handshake with ${where} within ${Math.round(timeoutMs / 1000)} s: nothing answered there (is a relay or the local service listening?)`, ExitCode.Unexpected, error);
    }
    throw new BenchError('ERR_BENCH_HANDSHAKE', `the handshake with ${where} failed: ${(error as Error).message}${code === null ? '' : ` (${code})`}`, ExitCode.Unexpected, error);
  } finally {
    await client.close().catch(() => undefined);
  }
}
