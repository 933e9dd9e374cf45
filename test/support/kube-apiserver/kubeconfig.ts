/**
 * A kubeconfig for one user of the stand-in: the cluster (server URL and CA), the user's credentials (bearer
 * token or client certificate and key), one context with a namespace, current. YAML, as client-node's
 * KubeConfig.loadFromFile / loadFromString and kubectl read it.
 */
import { stringify } from 'yaml';

export const CLUSTER_NAME = 'kube-apiserver-standin';

export interface KubeconfigUser {
  name: string;
  token?: string;
  certificate?: { certPem: string; keyPem: string };
}

function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

export function kubeconfigYaml(server: string, caPem: string, user: KubeconfigUser, namespace: string): string {
  const credentials: Record<string, string> = {};
  if (user.certificate !== undefined) {
    credentials['client-certificate-data'] = base64(user.certificate.certPem);
    credentials['client-key-data'] = base64(user.certificate.keyPem);
  }
  if (user.token !== undefined) credentials.token = user.token;
  const context = `${user.name}@${CLUSTER_NAME}`;
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: CLUSTER_NAME, cluster: { server, 'certificate-authority-data': base64(caPem) } }],
    users: [{ name: user.name, user: credentials }],
    contexts: [{ name: context, context: { cluster: CLUSTER_NAME, user: user.name, namespace } }],
    'current-context': context,
    preferences: {},
  });
}
