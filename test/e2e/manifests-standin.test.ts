/**
 * manifests/base applied as is to the Kubernetes API stand-in, with real relayd processes as its pods: the
 * first set comes up ready through its health-port probes; then a second set started awaiting restore
 * decides alone, reading its pods through the API with the relays' own service account under the shipped
 * Role: the pod whose double is marked restores its sessions from it, the one whose double is not serves empty.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLEET_LABELS, LABEL_TRUE, fleetNames } from '../../api/fleet.ts';
import { RELAY_RULES } from '../../api/kubernetes-rbac.ts';
import { ManagementClient } from '../../api/management-client.ts';
import { createCa, generateDtlsKeyPair, issueCertificate } from '../../pki/certificates.ts';
import { UpstreamEcho } from '../../orchestrator/platform/local/upstream-echo.ts';
import { relaydMain } from '../../relay/entry.ts';
import { RELAYD_NODE_FLAGS } from '../../relay/runtime-flags.ts';
import { closeAll, connectDevices, request } from '../support/devices.ts';
import { kustomize, MANIFESTS_ROOT, type K8sObject } from '../manifests/kustomize.ts';
import { startKubeApiServer, type KubeApiServer, type KubeObject } from '../support/kube-apiserver/index.ts';

const NS = 'relays';
const names = fleetNames('relay');
const PEERS = `${names.peersService}.${NS}.svc`;
const RELAY_USER = `system:serviceaccount:${NS}:relay`;

function condition(pod: KubeObject | undefined, type: string): string | undefined {
  return (pod?.status as { conditions?: Array<{ type: string; status: string }> } | undefined)?.conditions?.find((c) => c.type === type)?.status;
}

const podIp = (pod: KubeObject | undefined): string => (pod?.status as { podIP: string }).podIP;

function setEnv(set: K8sObject, values: Record<string, string>): void {
  const container = set.spec.template.spec.containers[0];
  for (const [name, value] of Object.entries(values)) {
    const existing = container.env.find((e: { name: string }) => e.name === name);
    if (existing !== undefined) existing.value = value;
    else container.env.push({ name, value });
  }
}

describe('manifests/base on the Kubernetes API stand-in', () => {
  let api: KubeApiServer;
  let echo: UpstreamEcho;
  let operator: ManagementClient;
  let dtlsPublicKey: Buffer;
  let base: K8sObject[];

  beforeAll(async () => {
    echo = new UpstreamEcho();
    const upstream = await echo.listen();
    // The Secrets a user creates before applying (README, "Deploy on Kubernetes").
    const ca = await createCa({ commonName: 'relay CA', validityDays: 1 });
    const relayCert = await issueCertificate(ca, { commonName: 'relay', dnsNames: [PEERS, `*.${PEERS}`], usage: 'both', validityDays: 1 });
    const operatorCert = await issueCertificate(ca, { commonName: 'relayctl', usage: 'client', validityDays: 1 });
    const dtls = await generateDtlsKeyPair();
    dtlsPublicKey = dtls.publicKeySpkiDer;
    operator = new ManagementClient({ ca: Buffer.from(ca.certPem), cert: Buffer.from(operatorCert.certPem), key: Buffer.from(operatorCert.keyPem), servername: PEERS });

    api = await startKubeApiServer({
      namespaces: [NS],
      kubelet: { images: { 'relayd:0.1.0': { entrypoint: [process.execPath, ...RELAYD_NODE_FLAGS, relaydMain()] } } },
    });
    api.apply([
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: names.secrets.dtls, namespace: NS }, type: 'Opaque', stringData: { 'server-key.pem': dtls.privateKeyPkcs8Pem } },
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: names.secrets.relayTls, namespace: NS }, type: 'kubernetes.io/tls', stringData: { 'tls.crt': relayCert.certPem, 'tls.key': relayCert.keyPem, 'ca.crt': ca.certPem } },
    ] as KubeObject[]);
    // `kubectl apply -k manifests/base -n relays`, with the upstream an overlay would set.
    base = kustomize(`${MANIFESTS_ROOT}/base`).map((object) => ({ ...object, metadata: { ...object.metadata, namespace: NS } }));
    setEnv(base.find((o) => o.kind === 'StatefulSet')!, { RELAY_UPSTREAM: `127.0.0.1:${upstream.port}` });
    api.apply(base as KubeObject[]);
  }, 60_000);

  afterAll(async () => {
    await api?.close();
    await operator?.close();
    await echo?.close();
  });

  it('the first set serves at once; a new set decides alone: restores from a marked double, serves empty beside an unmarked one', async () => {
    // First install: ready through the health-port probes, no restore (no RELAY_AWAIT_RESTORE).
    const ready = (name: string) => api.store.waitFor('pods', NS, name, (pod) => condition(pod, 'Ready') === 'True', 60_000);
    const [a0, , a2] = await Promise.all([0, 1, 2].map((i) => ready(`${names.sets.a}-${i}`)));
    expect(await operator.status(`https://${podIp(a0)}:8443`)).toMatchObject({ pod: 'relay-a-0', state: 'serving' });

    // Devices on relay-a-0, then relay-a-0 marked for restore (as the orchestrator's first step does); relay-a-2 not.
    const devices = await connectDevices({ host: podIp(a0), port: 5684, serverPublicKey: dtlsPublicKey, count: 5 });
    try {
      for (const device of devices) await request(device, Buffer.from('before'));
      api.apply({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'relay-a-0', namespace: NS, labels: { [FLEET_LABELS.restore]: LABEL_TRUE } } } as KubeObject);

      // relay-b as relayctl update creates it: the template copied, its own set label, awaiting restore.
      const set = structuredClone(base.find((o) => o.kind === 'StatefulSet')!);
      set.metadata = { name: names.sets.b, namespace: NS, labels: { ...set.metadata.labels, [FLEET_LABELS.set]: names.sets.b } };
      set.spec.selector.matchLabels[FLEET_LABELS.set] = names.sets.b;
      set.spec.template.metadata.labels[FLEET_LABELS.set] = names.sets.b;
      set.spec.replicas = 3;
      setEnv(set, { RELAY_AWAIT_RESTORE: 'true', RELAY_RESTORE_WAIT: '1s' });
      api.apply(set as KubeObject);

      const b0 = await ready('relay-b-0');
      const b2 = await ready('relay-b-2');
      expect(await operator.status(`https://${podIp(b0)}:8443`)).toMatchObject({ state: 'serving', sessions: { total: 5 } });
      expect(await operator.status(`https://${podIp(a0)}:8443`)).toMatchObject({ state: 'forwarding' });
      expect(await operator.status(`https://${podIp(b2)}:8443`)).toMatchObject({ state: 'serving', sessions: { total: 0 } });
      expect(await operator.status(`https://${podIp(a2)}:8443`)).toMatchObject({ state: 'serving' });
      for (const device of devices) expect((await request(device, Buffer.from('after'))).reply.toString()).toBe('after');
      expect(devices.map((d) => d.stats.handshakes)).toEqual([1, 1, 1, 1, 1]);

      const decisions = (pod: string) => (api.podLog(NS, pod) ?? '').split('\n').filter((l) => l.includes('restoreDecision')).map((l) => JSON.parse(l) as { restoreDecision: string; reason: string });
      expect(decisions('relay-b-0').map((d) => `${d.restoreDecision} ${d.reason}`)).toEqual(['wait DoubleMarked', 'restore DoubleMarked']);
      expect(decisions('relay-b-2').map((d) => `${d.restoreDecision} ${d.reason}`)).toEqual(['serve-empty DoubleNotMarked']);
    } finally {
      await closeAll(devices);
    }
    // The relays read pods with their own service account, within the Role manifests/base ships.
    const relayRequests = api.requests.all(RELAY_USER);
    expect(relayRequests.length).toBeGreaterThanOrEqual(6);
    expect(relayRequests.every((r) => r.code === 200 || r.code === 404)).toBe(true);
    expect(api.requests.requiredRules(RELAY_USER)).toEqual(RELAY_RULES.flatMap((rule) => rule.resources.flatMap((resource) => rule.verbs.map((verb) => ({ apiGroup: rule.apiGroups[0]!, resource, verb })))));
  }, 120_000);
});
