/**
 * `relayctl deploy` in miniature, run as its own process by deploy.test.ts: deploys, prints the cluster info as
 * one JSON line and exits, so the test can check that the relays and the service outlive the process that made them.
 *   node deploy-child.ts <stateDir> <pod-ips|shared>
 */
import { deployLocal, type NetworkMode } from '../../../orchestrator/platform/local/index.ts';

const [stateDir, network] = process.argv.slice(2);
if (stateDir === undefined || (network !== 'pod-ips' && network !== 'shared')) throw new Error('usage: deploy-child.ts <stateDir> <pod-ips|shared>');
const info = await deployLocal({ stateDir, replicas: 2, image: 'relay:1', servicePort: 0, affinityMs: 1_500, network: network as NetworkMode });
process.stdout.write(`${JSON.stringify({ ...info, serverPublicKey: info.serverPublicKey.toString('base64') })}\n`);
