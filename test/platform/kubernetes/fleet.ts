import { fileURLToPath } from 'node:url';
import type { V1StatefulSet } from '@kubernetes/client-node';
import { createCa, generateDtlsKeyPair } from '../../../pki/certificates.ts';
import { issueOperatorCertificate, issueRelayCertificate, relayPeerDnsNames } from '../../../pki/roles.ts';
import { UpstreamEcho } from '../../../orchestrator/platform/local/upstream-echo.ts';
import type { KubeObject } from '../../support/kube-apiserver/index.ts';
import { NS, standIn, type StandIn } from './standin.ts';

/**
 * A fleet `relay` on the API stand-in with real relays: the stand-in's kubelet runs each pod's relay container as
 * relayd (every image `relay:<tag>` is this checkout), bound to the pod's own loopback address; the Secrets and
 * the headless peers Service are those of docs/design/contracts.md, and the first set relay-a is what the manifests
 * deploy. Readiness: with `healthPort`, the kubelet probes relayd's plain-HTTP /readyz (RELAY_HEALTH_PORT), so
 * the Ready condition follows the relay's state; without it (a relayd without a health port) there is no probe
 * and pods are Ready as soon as their container runs (the relay's state then shows in relay.status only).
 */

const RELAYD = fileURLToPath(new URL('../../../bin/relayd.js', import.meta.url));

export interface Fleet {
  standin: StandIn;
  echo: UpstreamEcho;
  /** The DTLS public key devices pin (SPKI DER). */
  serverPublicKey: Buffer;
  /** relayctl's certificate, as --mgmt-cert/--mgmt-key/--mgmt-ca files would give it. */
  operator: { ca: string; cert: string; key: string };
  close(): Promise<void>;
}

const base64 = (text: string | Buffer): string => Buffer.from(text).toString('base64');

export async function deployFleet(options: { replicas: number; healthPort?: boolean }): Promise<Fleet> {
  const standin = await standIn({ kubelet: { images: (image) => (image.startsWith('relay:') ? { entrypoint: [process.execPath, RELAYD] } : undefined) } });
  const echo = new UpstreamEcho();
  try {
    const upstream = await echo.listen();
    const ca = await createCa({ commonName: 'relay test CA', validityDays: 2 });
    const relay = await issueRelayCertificate(ca, { dnsNames: relayPeerDnsNames('relay', NS), validityDays: 1 });
    const operator = await issueOperatorCertificate(ca, { validityDays: 1 });
    const dtls = await generateDtlsKeyPair();
    standin.api.apply([
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'relay-dtls', namespace: NS }, type: 'Opaque', data: { 'server-key.pem': base64(dtls.privateKeyPkcs8Pem) } },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'relay-relay-tls', namespace: NS },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': base64(relay.certPem), 'tls.key': base64(relay.keyPem), 'ca.crt': base64(ca.certPem) },
      },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'relay-relayctl-tls', namespace: NS },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': base64(operator.certPem), 'tls.key': base64(operator.keyPem), 'ca.crt': base64(ca.certPem) },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'relay-peers', namespace: NS },
        spec: {
          clusterIP: 'None',
          publishNotReadyAddresses: true,
          selector: { 'relayctl.dev/fleet': 'relay' },
          ports: [
            { name: 'mgmt', port: 8443, protocol: 'TCP' },
            { name: 'tunnel', port: 5685, protocol: 'UDP' },
          ],
        },
      },
      activeSet(options.replicas, `${upstream.host}:${upstream.port}`, options.healthPort ?? false),
    ] as KubeObject[]);
    return {
      standin,
      echo,
      serverPublicKey: dtls.publicKeySpkiDer,
      operator: { ca: ca.certPem, cert: operator.certPem, key: operator.keyPem },
      async close() {
        await standin.close();
        await echo.close();
      },
    };
  } catch (error) {
    await standin.close();
    await echo.close();
    throw error;
  }
}

function activeSet(replicas: number, upstream: string, healthPort: boolean): V1StatefulSet {
  const podIp = { valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } };
  const labels = { 'relayctl.dev/fleet': 'relay', 'relayctl.dev/set': 'relay-a' };
  return {
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: { name: 'relay-a', namespace: NS, labels },
    spec: {
      replicas,
      serviceName: 'relay-peers',
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: labels },
      template: {
        metadata: { labels: { ...labels, 'relayctl.dev/serving': 'true' } },
        spec: {
          serviceAccountName: 'relay',
          terminationGracePeriodSeconds: 5,
          containers: [
            {
              name: 'relay',
              image: 'relay:1',
              env: [
                { name: 'RELAY_POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                { name: 'RELAY_DTLS_HOST', ...podIp },
                { name: 'RELAY_MGMT_HOST', ...podIp },
                { name: 'RELAY_TUNNEL_HOST', ...podIp },
                { name: 'RELAY_DTLS_KEY', value: '/etc/relay/dtls/server-key.pem' },
                { name: 'RELAY_TLS_CERT', value: '/etc/relay/tls/tls.crt' },
                { name: 'RELAY_TLS_KEY', value: '/etc/relay/tls/tls.key' },
                { name: 'RELAY_TLS_CA', value: '/etc/relay/tls/ca.crt' },
                { name: 'RELAY_PEER_SERVERNAME', value: `relay-peers.${NS}.svc` },
                { name: 'RELAY_UPSTREAM', value: upstream },
                ...(healthPort ? [{ name: 'RELAY_POD_IP', ...podIp }, { name: 'RELAY_HEALTH_PORT', value: '8080' }] : []),
              ],
              ports: [
                { name: 'dtls', containerPort: 5684, protocol: 'UDP' },
                { name: 'tunnel', containerPort: 5685, protocol: 'UDP' },
                { name: 'mgmt', containerPort: 8443, protocol: 'TCP' },
                ...(healthPort ? [{ name: 'health', containerPort: 8080, protocol: 'TCP' }] : []),
              ],
              ...(healthPort ? { readinessProbe: { httpGet: { path: '/readyz', port: 'health' }, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 1 } } : {}),
              volumeMounts: [
                { name: 'dtls', mountPath: '/etc/relay/dtls', readOnly: true },
                { name: 'tls', mountPath: '/etc/relay/tls', readOnly: true },
              ],
            },
          ],
          volumes: [
            { name: 'dtls', secret: { secretName: 'relay-dtls' } },
            { name: 'tls', secret: { secretName: 'relay-relay-tls' } },
          ],
        },
      },
    },
  };
}
