/**
 * relayd's start-up path holds no relayctl code: not @kubernetes/client-node (relayd reads the API with plain
 * HTTPS), nothing of orchestrator/ or cli/. Checked twice: statically over every import of relay/main.ts
 * (dynamic ones included, executed or not), and by loading relayd and recording what Node resolved.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { RELAYD_NODE_FLAGS } from '../../relay/runtime-flags.ts';
import { packageOf, RECORD_IMPORTS, RELAYCTL_ONLY_FOLDERS, RELAYCTL_ONLY_PACKAGES, resolvedBy, ROOT, SPECIFIERS, staticGraph } from './module-graph.ts';

describe("relayd's import graph", () => {
  it('statically reaches no relayctl-only package and no orchestrator or CLI module', () => {
    const graph = staticGraph(`${ROOT}relay/main.ts`);
    expect(graph.files).toContain('relay/startup/kubernetes-api.ts');
    expect(graph.packages).toContain('undici');
    for (const name of RELAYCTL_ONLY_PACKAGES) expect(graph.packages, name).not.toContain(name);
    expect(graph.files.filter((file) => RELAYCTL_ONLY_FOLDERS.some((folder) => file.startsWith(folder)))).toEqual([]);
  });

  it('the static walk would see @kubernetes/client-node if relayd imported it', () => {
    // The walk itself, on a module that does import it (the CLI), so the check above cannot pass vacuously.
    expect(staticGraph(`${ROOT}cli/main.ts`).files.length).toBeGreaterThan(10);
    const text = "import { KubeConfig } from '@kubernetes/client-node';\nconst x = await import('./y.ts');\nimport type { Z } from 'yaml';";
    expect([...text.matchAll(SPECIFIERS)].map((m) => m[1] ?? m[2])).toEqual(['@kubernetes/client-node', './y.ts']);
  });

  it('loading relayd resolves no relayctl-only package or module', () => {
    const run = spawnSync(process.execPath, [...RELAYD_NODE_FLAGS, `--import=${RECORD_IMPORTS}`, `${ROOT}relay/main.ts`, '--help'], { encoding: 'utf8', timeout: 20_000 });
    expect(run.status, run.stderr).toBe(0);
    const urls = resolvedBy(run.stderr);
    expect(urls.some((url) => url.endsWith('/relay/relay.ts'))).toBe(true);
    const packages = new Set(urls.map(packageOf).filter((name) => name !== null));
    for (const name of RELAYCTL_ONLY_PACKAGES) expect(packages, name).not.toContain(name);
    expect(urls.filter((url) => RELAYCTL_ONLY_FOLDERS.some((folder) => url.startsWith(`file://${ROOT}${folder}`)))).toEqual([]);
  });
});
