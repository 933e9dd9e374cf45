import { readFile, writeFile } from 'node:fs/promises';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { roleFromSubjectAltName } from '../../../api/management-roles.ts';
import { deployLocal, type DeployNotice } from '../../../orchestrator/platform/local/cluster.ts';
import { ensureLocalPki, loadLocalPki, operatorClientTlsOptions, RELAY_TLS_SERVERNAME, type LocalPki } from '../../../orchestrator/platform/local/pki.ts';
import { localPaths, readPod, readService } from '../../../orchestrator/platform/local/state.ts';
import { issueCertificate } from '../../../pki/certificates.ts';
import { running, tempState } from './helpers.ts';

const DEPLOY = { replicas: 2, image: 'relay:1', servicePort: 0, affinityMs: 1_500 } as const;

/** The certificate a relay's management port presents right now: what the process really runs with. */
function presented(pki: LocalPki, address: string, port: number): Promise<{ fingerprint256: string; role: string | null }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: address, port, ...operatorClientTlsOptions(pki), timeout: 5_000 }, () => {
      const cert = socket.getPeerCertificate();
      socket.destroy();
      resolve({ fingerprint256: cert.fingerprint256, role: roleFromSubjectAltName(cert.subjectaltname) });
    });
    socket.once('error', reject);
    socket.once('timeout', () => socket.destroy(new Error('TLS connect timed out')));
  });
}

/** Pids of the pods and the service, by name. */
async function pids(stateDir: string): Promise<Record<string, number | null>> {
  const paths = localPaths(stateDir);
  return {
    'relay-a-0': (await readPod(paths, 'relay-a-0'))?.pid ?? null,
    'relay-a-1': (await readPod(paths, 'relay-a-1'))?.pid ?? null,
    service: (await readService(paths))?.pid ?? null,
  };
}

/**
 * Certificates are reissued under running processes (an older relayctl's role-less certificates, or a corrupt
 * file): deploy regenerates them and restarts exactly the processes that still run with a certificate the folder no
 * longer holds, once.
 */
describe('deploy after certificates were reissued', () => {
  let state: Awaited<ReturnType<typeof tempState>>;

  beforeAll(async () => {
    state = await tempState();
    await deployLocal({ stateDir: state.dir, ...DEPLOY });
  });

  afterAll(async () => {
    await state?.cleanup();
  });

  test('role-less certificates of an older relayctl: regenerated, the service and every relay restarted with the new ones', async () => {
    const pki = await loadLocalPki(state.dir);
    const before = await pids(state.dir);
    // What an older relayctl left in the folder: the same CA, no roles.
    const ca = { certPem: pki.ca.cert, keyPem: await readFile(pki.paths.caKey) };
    const relay = await issueCertificate(ca, { commonName: RELAY_TLS_SERVERNAME, dnsNames: ['localhost', RELAY_TLS_SERVERNAME], ipAddresses: ['127.0.0.1', '::1'], usage: 'both', validityDays: 365 });
    const operator = await issueCertificate(ca, { commonName: 'relayctl-operator', usage: 'client', validityDays: 365 });
    await writeFile(pki.paths.relayCert, relay.certPem);
    await writeFile(pki.paths.relayKey, relay.keyPem, { mode: 0o600 });
    await writeFile(pki.paths.operatorCert, operator.certPem);
    await writeFile(pki.paths.operatorKey, operator.keyPem, { mode: 0o600 });

    const notices: DeployNotice[] = [];
    await deployLocal({ stateDir: state.dir, ...DEPLOY, onNotice: (notice) => notices.push(notice) });
    expect(notices.map((notice) => notice.kind)).toEqual(['pki-regenerated', 'service-restarted', 'relays-restarted']);
    expect(notices[0]).toMatchObject({ changes: [{ item: 'relay', reason: 'outdated' }, { item: 'operator', reason: 'outdated' }] });
    expect(notices[2]).toMatchObject({
      set: 'relay-a',
      pods: [
        { pod: 'relay-a-0', reason: 'certificate-reissued' },
        { pod: 'relay-a-1', reason: 'certificate-reissued' },
      ],
      message: 'restarted relays of relay-a: relay-a-0, relay-a-1 ran with a certificate reissued since (their devices handshake again)',
    });

    const after = await pids(state.dir);
    for (const name of Object.keys(before)) {
      expect(after[name], name).not.toBe(before[name]);
      expect(running(before[name]!), name).toBe(false);
    }
    const current = await loadLocalPki(state.dir);
    for (const name of ['relay-a-0', 'relay-a-1']) {
      const pod = (await readPod(localPaths(state.dir), name))!;
      expect(pod.tlsCertificate).toBe(current.relay.fingerprint256);
      expect(await presented(current, pod.address, pod.mgmtPort)).toEqual({ fingerprint256: current.relay.fingerprint256, role: 'relay' });
    }
    expect((await readService(localPaths(state.dir)))?.tlsCertificate).toBe(current.operator.fingerprint256);

    // Nothing is wrong any more: deploy again changes nothing.
    const quiet: DeployNotice[] = [];
    await deployLocal({ stateDir: state.dir, ...DEPLOY, onNotice: (notice) => quiet.push(notice) });
    expect(quiet).toEqual([]);
    expect(await pids(state.dir)).toEqual(after);
  });

  test('a deploy that died after regenerating: the next one still restarts the relays, and only them', async () => {
    const pki = await loadLocalPki(state.dir);
    const before = await pids(state.dir);
    await writeFile(pki.paths.relayCert, 'not a certificate\n');
    // What the interrupted deploy got done: the folder is right again, the processes are not.
    expect((await ensureLocalPki(state.dir)).changes.map((change) => `${change.item}:${change.reason}`)).toEqual(['relay:corrupt']);

    const notices: DeployNotice[] = [];
    await deployLocal({ stateDir: state.dir, ...DEPLOY, onNotice: (notice) => notices.push(notice) });
    expect(notices.map((notice) => notice.kind)).toEqual(['relays-restarted']);
    const after = await pids(state.dir);
    expect(after.service).toBe(before.service);
    expect(after['relay-a-0']).not.toBe(before['relay-a-0']);
    expect(after['relay-a-1']).not.toBe(before['relay-a-1']);
  });
});
