import { connect } from 'node:net';
import { duplexPair, type Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ManagementClient, ManagementError, type Tunnel } from '../../../api/management-client.ts';
import { operatorClientTlsOptions } from '../../../orchestrator/platform/local/pki.ts';
import { relayFixture, startRelay, type RelayProcess } from '../../support/relayd.ts';

/**
 * The management client with its mutual TLS running inside a tunnel it is given (what a port-forward provides),
 * against a real relayd. The tunnel here is an in-memory stream pair spliced onto a TCP connection to the relay, so
 * nothing but the stream interface is assumed of it.
 */
describe('management API through a tunnel', () => {
  const fixture = relayFixture();
  let relay: RelayProcess;
  const opened: Array<{ host: string; port: number }> = [];
  let relayPort = 0;

  const tunnel: Tunnel = async (origin) => {
    opened.push(origin);
    const [near, far] = duplexPair();
    const socket = connect(relayPort, '127.0.0.1');
    far.pipe(socket).pipe(far);
    const closeBoth = (): void => {
      socket.destroy();
      far.destroy();
    };
    socket.on('error', closeBoth);
    far.on('error', closeBoth);
    return near as Duplex;
  };

  beforeAll(async () => {
    // One relay for the whole file (the fixture's own relays stop after each test).
    relay = await startRelay(fixture.env.pki, { name: 'relay-a-0', upstream: fixture.upstream });
    relayPort = Number(new URL(relay.mgmtUrl).port);
  });

  afterAll(async () => {
    await relay?.stop();
  });

  test('status over the tunnel: the URL host names the pod, the certificate is checked against the configured name, connections are reused', async () => {
    const client = new ManagementClient(operatorClientTlsOptions(fixture.env.pki), { tunnel });
    try {
      const status = await client.status('https://relay-a-0:8443');
      expect(status).toMatchObject({ pod: 'relay-a-0', state: 'serving', ready: true });
      // Once the first answer is fully handled, the next call goes over the same tunnel.
      await new Promise((resolve) => setImmediate(resolve));
      expect(await client.readyz('https://relay-a-0:8443')).toMatchObject({ ready: true });
      expect(opened).toEqual([{ host: 'relay-a-0', port: 8443 }]);
    } finally {
      await client.close();
    }
  });

  test('a relay certificate not valid for the expected name is refused inside the tunnel', async () => {
    const client = new ManagementClient({ ...operatorClientTlsOptions(fixture.env.pki), servername: 'relay-peers.other.svc' }, { tunnel });
    try {
      const error = await client.status('https://relay-a-0:8443').catch((caught: unknown) => caught);
      expect(error).toBeInstanceOf(ManagementError);
      expect((error as ManagementError).code).toBe('ERR_MGMT_UNREACHABLE');
      expect(((error as ManagementError).cause as { code?: string }).code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
    } finally {
      await client.close();
    }
  });

  test('a tunnel that cannot be opened fails the call with the tunnel\'s own error as the cause', async () => {
    const refusal = Object.assign(new Error('forbidden: pods/portforward'), { code: 'ERR_KUBE_FORBIDDEN' });
    const client = new ManagementClient(operatorClientTlsOptions(fixture.env.pki), { tunnel: async () => Promise.reject(refusal), timeoutMs: 5_000 });
    try {
      const error = (await client.status('https://relay-a-0:8443').catch((caught: unknown) => caught)) as ManagementError;
      expect(error.code).toBe('ERR_MGMT_UNREACHABLE');
      expect(error.cause).toBe(refusal);
    } finally {
      await client.close();
    }
  });

  test('a tunnel that never opens ends the call at the connect timeout', async () => {
    const client = new ManagementClient(operatorClientTlsOptions(fixture.env.pki), { tunnel: () => new Promise<Duplex>(() => undefined), timeoutMs: 200 });
    try {
      const error = (await client.status('https://relay-a-0:8443').catch((caught: unknown) => caught)) as ManagementError;
      expect(error.code).toBe('ERR_MGMT_TIMEOUT');
      expect(error.message).toContain('tunnel to relay-a-0:8443 not open within 200 ms');
    } finally {
      await client.close();
    }
  });
});
