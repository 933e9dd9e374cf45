/**
 * manifests/: rendered the way kustomize does, every object validated against the Kubernetes OpenAPI schemas
 * (unknown fields refused, as the API server's strict field validation does), and the properties the relays
 * and relayctl depend on checked against the contract (docs/design/contracts.md, api/fleet.ts).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { FLEET_LABELS, LABEL_TRUE, RELAY_CONTAINER, RELAY_PORTS, RELAY_SECRET_MOUNTS, fleetNames } from '../../api/fleet.ts';
import { RELAY_RULES, relayctlRules } from '../../api/kubernetes-rbac.ts';
import { relaydCommand } from '../../relay/config.ts';
import { DEFAULT_SERVICE_ACCOUNT_DIR } from '../../relay/startup/kubernetes-api.ts';
import { kustomize, MANIFESTS_ROOT, type K8sObject } from './kustomize.ts';
import { checkFields, schemaProblems, type FieldSpec } from './schema.ts';

const FLEET = 'relay';
const FIXTURE = fileURLToPath(new URL('./fixtures/renamed', import.meta.url));
const names = fleetNames(FLEET);
const base = kustomize(join(MANIFESTS_ROOT, 'base'));
const overlay = kustomize(join(MANIFESTS_ROOT, 'overlays/example'));

function one(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && o.metadata.name === name);
  expect(found, `${kind}/${name}`).toHaveLength(1);
  return found[0]!;
}

// cert-manager's v1 API (kubernetes-models ships no cert-manager schemas): the fields these manifests may use.
const CERT_MANAGER_METADATA: FieldSpec = { name: 'string', namespace: 'string', labels: 'map', annotations: 'map' };
const ISSUER_REF: FieldSpec = { name: 'string', kind: 'string', group: 'string' };
const CERT_MANAGER: Record<string, (object: K8sObject) => string[]> = {
  'cert-manager.io/v1 Issuer': (object) => checkFields(object, {
    apiVersion: 'string', kind: 'string', metadata: CERT_MANAGER_METADATA,
    spec: { selfSigned: { crlDistributionPoints: 'string[]' }, ca: { secretName: 'string', crlDistributionPoints: 'string[]' } },
  }, object.metadata.name),
  'cert-manager.io/v1 Certificate': (object) => checkFields(object, {
    apiVersion: 'string', kind: 'string', metadata: CERT_MANAGER_METADATA,
    spec: {
      secretName: 'string', commonName: 'string', dnsNames: 'string[]', ipAddresses: 'string[]', uris: 'string[]', emailAddresses: 'string[]',
      isCA: 'boolean', duration: 'string', renewBefore: 'string', usages: 'string[]', issuerRef: ISSUER_REF,
      privateKey: { algorithm: 'string', size: 'number', encoding: 'string', rotationPolicy: 'string' },
      secretTemplate: { labels: 'map', annotations: 'map' },
    },
  }, object.metadata.name),
};

describe('manifests render and validate', () => {
  it('renders the base and the example overlay', () => {
    expect(base.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual([
      'NetworkPolicy/relay', 'PodDisruptionBudget/relay', 'Role/relay', 'Role/relayctl', 'RoleBinding/relay', 'RoleBinding/relayctl',
      'Service/relay', 'Service/relay-peers', 'ServiceAccount/relay', 'ServiceAccount/relayctl', 'StatefulSet/relay-a',
    ]);
    expect(overlay.length).toBe(base.length + 6);
  });

  it('every object is valid against the Kubernetes OpenAPI schemas, with no unknown field', async () => {
    for (const object of [...base, ...overlay]) {
      expect(await schemaProblems(object, CERT_MANAGER), `${object.kind}/${object.metadata.name}`).toEqual([]);
    }
  });

  it('the validation refuses a typo, a wrong type and a missing required field', async () => {
    const set = structuredClone(one(base, 'StatefulSet', names.sets.a));
    set.spec.replicaz = 3;
    set.spec.template.spec.containers[0].readinesProbe = set.spec.template.spec.containers[0].readinessProbe;
    set.spec.template.spec.securityContext.runAsUsr = 1;
    set.spec.replicas = '3';
    delete set.spec.selector;
    const problems = await schemaProblems(set);
    expect(problems).toEqual(expect.arrayContaining([
      '.spec.replicaz: unknown field',
      '.spec.template.spec.containers[0].readinesProbe: unknown field',
      '.spec.template.spec.securityContext.runAsUsr: unknown field',
      'data/spec/replicas must be integer',
      'data/spec must have required property selector',
    ]));
    const certificate = structuredClone(one(overlay, 'Certificate', names.secrets.relayTls));
    certificate.spec.dnsName = ['x'];
    expect(await schemaProblems(certificate, CERT_MANAGER)).toEqual([`${names.secrets.relayTls}.spec.dnsName: unknown field`]);
  });

  const kubectl = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!kubectl)('renders exactly what kubectl kustomize renders (here, and for a fixture using the other features)', () => {
    for (const dir of [join(MANIFESTS_ROOT, 'base'), join(MANIFESTS_ROOT, 'overlays/example'), FIXTURE]) {
      const run = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8', timeout: 30_000 });
      expect(run.status, run.stderr).toBe(0);
      const byId = (objects: K8sObject[]) => new Map(objects.map((o) => [`${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`, o]));
      const theirs = byId(parseAllDocuments(run.stdout, { version: '1.1' }).map((d) => d.toJS() as K8sObject));
      const ours = byId(kustomize(dir));
      expect([...ours.keys()].sort()).toEqual([...theirs.keys()].sort());
      for (const [id, object] of ours) expect(object, id).toEqual(theirs.get(id));
    }
  });
});

describe('the relay StatefulSet', () => {
  const set = one(base, 'StatefulSet', names.sets.a);
  const pod = set.spec.template.spec;
  const container = pod.containers[0];
  const env = new Map<string, any>(container.env.map((e: any) => [e.name, e]));

  it('selects its own pods by the contract labels; the template carries fleet, set and serving', () => {
    expect(set.metadata.labels).toMatchObject({ [FLEET_LABELS.fleet]: FLEET, [FLEET_LABELS.set]: names.sets.a });
    expect(set.spec.selector).toEqual({ matchLabels: { [FLEET_LABELS.fleet]: FLEET, [FLEET_LABELS.set]: names.sets.a } });
    expect(set.spec.template.metadata.labels).toMatchObject({ [FLEET_LABELS.fleet]: FLEET, [FLEET_LABELS.set]: names.sets.a, [FLEET_LABELS.serving]: LABEL_TRUE });
    expect(set.spec.template.metadata.labels[FLEET_LABELS.restore]).toBeUndefined();
    expect(set.spec).toMatchObject({ serviceName: names.peersService, podManagementPolicy: 'Parallel', updateStrategy: { type: 'OnDelete' } });
  });

  it('runs relayd in the container the contract names, exposing the contract ports by name', () => {
    expect(pod.containers.map((c: any) => c.name)).toEqual([RELAY_CONTAINER]);
    expect(container.ports).toEqual(Object.entries(RELAY_PORTS).map(([name, { port, protocol }]) => ({ name, containerPort: port, protocol })));
  });

  it('probes the plain-HTTP health port: a short readiness period, a liveness that only a dead relay fails', () => {
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
    expect(container.livenessProbe.httpGet).toEqual({ path: '/livez', port: 'health' });
    const readiness = container.readinessProbe;
    expect(readiness.periodSeconds * readiness.failureThreshold).toBeLessThanOrEqual(2);
    const liveness = container.livenessProbe;
    expect(liveness.periodSeconds * liveness.failureThreshold).toBeGreaterThanOrEqual(30);
    expect(env.get('RELAY_HEALTH_PORT').value).toBe(String(RELAY_PORTS.health.port));
  });

  it('takes name, namespace and IP from the downward API, and sets only variables relayd reads', () => {
    expect(env.get('RELAY_POD_NAME').valueFrom).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(env.get('RELAY_POD_NAMESPACE').valueFrom).toEqual({ fieldRef: { fieldPath: 'metadata.namespace' } });
    expect(env.get('RELAY_POD_IP').valueFrom).toEqual({ fieldRef: { fieldPath: 'status.podIP' } });
    expect(env.get('RELAY_PEERS').value).toBe(`${names.peersService}.$(RELAY_POD_NAMESPACE).svc:${RELAY_PORTS.mgmt.port}`);
    expect(env.get('RELAY_PEER_SERVERNAME').value).toBe(`${names.peersService}.$(RELAY_POD_NAMESPACE).svc`);
    expect(env.get('RELAY_SERVICE_ACCOUNT_DIR').value).toBe(DEFAULT_SERVICE_ACCOUNT_DIR);
    // $(VAR) expands only variables defined earlier in the list.
    const order = container.env.map((e: any) => e.name);
    expect(order.indexOf('RELAY_POD_NAMESPACE')).toBeLessThan(order.indexOf('RELAY_PEERS'));
    // The first set serves at once: awaiting restore is for the sets relayctl creates.
    expect(env.has('RELAY_AWAIT_RESTORE')).toBe(false);
    const known = new Set(relaydCommand().options.map((option) => option.envVar).filter((name) => name !== undefined));
    expect([...env.keys()].filter((name) => !known.has(name))).toEqual([]);
  });

  it('mounts the DTLS key and the mTLS Secrets read-only where the relay reads them', () => {
    const volumes = new Map<string, any>(pod.volumes.map((v: any) => [v.name, v]));
    const mounts = new Map<string, any>(container.volumeMounts.map((m: any) => [m.mountPath, m]));
    expect(volumes.get(mounts.get(RELAY_SECRET_MOUNTS.dtls).name).secret.secretName).toBe(names.secrets.dtls);
    expect(volumes.get(mounts.get(RELAY_SECRET_MOUNTS.tls).name).secret.secretName).toBe(names.secrets.relayTls);
    for (const mount of container.volumeMounts) expect(mount.readOnly, mount.mountPath).toBe(true);
    for (const volume of pod.volumes) expect(volume.secret.defaultMode, volume.name).toBe(0o440);
    expect(env.get('RELAY_DTLS_KEY').value).toBe(`${RELAY_SECRET_MOUNTS.dtls}/server-key.pem`);
    expect([env.get('RELAY_TLS_CERT').value, env.get('RELAY_TLS_KEY').value, env.get('RELAY_TLS_CA').value]).toEqual(['tls.crt', 'tls.key', 'ca.crt'].map((key) => `${RELAY_SECRET_MOUNTS.tls}/${key}`));
  });

  it('meets the restricted Pod Security Standard, with a read-only root filesystem', () => {
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.securityContext.runAsUser).toBeGreaterThan(0);
    expect(container.securityContext).toEqual({
      runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, privileged: false, capabilities: { drop: ['ALL'] },
    });
    expect(pod.hostNetwork ?? false).toBe(false);
    expect(pod.volumes.every((v: any) => Object.keys(v).every((key) => ['name', 'secret', 'configMap', 'emptyDir', 'projected', 'downwardAPI'].includes(key)))).toBe(true);
  });

  it('spreads a set over nodes, has resources, a handover-long grace period, and the relays\' service account', () => {
    const term = pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
    expect(term).toEqual({ topologyKey: 'kubernetes.io/hostname', labelSelector: { matchLabels: { [FLEET_LABELS.fleet]: FLEET } }, matchLabelKeys: [FLEET_LABELS.set] });
    expect(container.resources.requests).toMatchObject({ cpu: expect.any(String), memory: expect.any(String) });
    expect(container.resources.limits.memory).toBeDefined();
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(30);
    expect(pod.serviceAccountName).toBe('relay');
    expect(pod.automountServiceAccountToken).toBe(true);
  });
});

describe('Services, RBAC, NetworkPolicy, PodDisruptionBudget', () => {
  const template = one(base, 'StatefulSet', names.sets.a).spec.template.metadata.labels as Record<string, string>;
  const selects = (selector: Record<string, string>) => Object.entries(selector).every(([key, value]) => template[key] === value);

  it('the device Service: UDP to serving pods of either set, keeping the devices\' source addresses', () => {
    const service = one(base, 'Service', names.deviceService);
    expect(service.spec.selector).toEqual({ [FLEET_LABELS.fleet]: FLEET, [FLEET_LABELS.serving]: LABEL_TRUE });
    expect(selects(service.spec.selector)).toBe(true);
    expect(service.spec.externalTrafficPolicy).toBe('Local');
    expect(['LoadBalancer', 'NodePort']).toContain(service.spec.type);
    expect(service.spec.ports).toEqual([{ name: 'dtls', port: RELAY_PORTS.dtls.port, targetPort: 'dtls', protocol: 'UDP' }]);
  });

  it('the peers Service: headless, every pod of the fleet, not-ready ones included', () => {
    const service = one(base, 'Service', names.peersService);
    expect(service.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true, selector: { [FLEET_LABELS.fleet]: FLEET } });
    expect(service.spec.ports).toEqual([
      { name: 'mgmt', port: RELAY_PORTS.mgmt.port, targetPort: 'mgmt', protocol: 'TCP' },
      { name: 'tunnel', port: RELAY_PORTS.tunnel.port, targetPort: 'tunnel', protocol: 'UDP' },
    ]);
  });

  it('grants relayctl and the relays exactly the rules of api/kubernetes-rbac.ts', () => {
    expect(one(base, 'Role', 'relayctl').rules).toEqual(relayctlRules(FLEET));
    expect(one(base, 'Role', 'relay').rules).toEqual(RELAY_RULES);
    for (const name of ['relayctl', 'relay']) {
      expect(one(base, 'RoleBinding', name)).toMatchObject({ roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name }, subjects: [{ kind: 'ServiceAccount', name }] });
      one(base, 'ServiceAccount', name);
    }
    // Applied in a namespace, the subjects name it.
    expect(one(overlay, 'RoleBinding', 'relayctl').subjects).toEqual([{ kind: 'ServiceAccount', name: 'relayctl', namespace: 'relay-system' }]);
  });

  it('lets only fleet pods (and an in-cluster relayctl) reach the management and tunnel ports; devices the DTLS port', () => {
    const policy = one(base, 'NetworkPolicy', FLEET);
    expect(policy.spec.podSelector).toEqual({ matchLabels: { [FLEET_LABELS.fleet]: FLEET } });
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    const openTo = (port: string) => policy.spec.ingress.filter((rule: any) => rule.ports.some((p: any) => p.port === port));
    for (const port of ['mgmt', 'tunnel']) {
      for (const rule of openTo(port)) {
        expect(rule.from?.length, port).toBeGreaterThan(0);
        for (const peer of rule.from) expect(Object.keys(peer), port).toEqual(['podSelector']);
      }
    }
    expect(openTo('tunnel').flatMap((rule: any) => rule.from)).toEqual([{ podSelector: { matchLabels: { [FLEET_LABELS.fleet]: FLEET } } }]);
    expect(openTo('dtls')).toEqual([{ ports: [{ port: 'dtls', protocol: 'UDP' }] }]);
  });

  it('a policy/v1 PodDisruptionBudget over the fleet', () => {
    const budget = one(base, 'PodDisruptionBudget', FLEET);
    expect(budget.apiVersion).toBe('policy/v1');
    expect(budget.spec).toEqual({ maxUnavailable: 1, selector: { matchLabels: { [FLEET_LABELS.fleet]: FLEET } } });
  });
});

describe('the example overlay', () => {
  it('puts everything namespaced in its namespace and sets the image and the upstream', () => {
    for (const object of overlay) if (object.kind !== 'Namespace') expect(object.metadata.namespace, `${object.kind}/${object.metadata.name}`).toBe('relay-system');
    const container = one(overlay, 'StatefulSet', names.sets.a).spec.template.spec.containers[0];
    expect(container.image).toBe('registry.example.com/relayctl/relayd:0.1.0');
    expect(container.env.find((e: any) => e.name === 'RELAY_UPSTREAM').value).toBe('coap-backend.iot.svc.cluster.local:5683');
    const order = container.env.map((e: any) => e.name);
    expect([...order].sort()).toEqual(one(base, 'StatefulSet', names.sets.a).spec.template.spec.containers[0].env.map((e: any) => e.name).sort());
    // A strategic merge patch moves the variables it names to the front: $(RELAY_POD_NAMESPACE) must still come first.
    expect(order.indexOf('RELAY_POD_NAMESPACE')).toBeLessThan(order.indexOf('RELAY_PEERS'));
  });

  it('has Prometheus scrape /metrics on the health port', () => {
    expect(one(overlay, 'StatefulSet', names.sets.a).spec.template.metadata.annotations).toEqual({
      'prometheus.io/scrape': 'true', 'prometheus.io/port': String(RELAY_PORTS.health.port), 'prometheus.io/path': '/metrics',
    });
  });

  it('issues the management certificates with cert-manager: role URI SANs, the peers names, the contract Secrets', () => {
    const relay = one(overlay, 'Certificate', names.secrets.relayTls);
    expect(relay.spec).toMatchObject({
      secretName: names.secrets.relayTls,
      uris: ['spiffe://relayctl.dev/role/relay'],
      dnsNames: [`${names.peersService}.relay-system.svc`, `*.${names.peersService}.relay-system.svc`],
      usages: expect.arrayContaining(['server auth', 'client auth']),
    });
    const operator = one(overlay, 'Certificate', names.secrets.relayctlTls);
    expect(operator.spec).toMatchObject({ secretName: names.secrets.relayctlTls, uris: ['spiffe://relayctl.dev/role/operator'], usages: expect.arrayContaining(['client auth']) });
    expect(operator.spec.usages).not.toContain('server auth');
    expect(overlay.filter((o) => o.kind === 'Certificate').every((c) => c.spec.secretName !== names.secrets.dtls)).toBe(true);
  });
});
