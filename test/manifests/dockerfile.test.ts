/**
 * The relay image, checked from its Dockerfile and .dockerignore (no Docker engine runs here): multi-stage on
 * a pinned Node 24 slim base, the native addon built in the build stage, only production dependencies and
 * compiled JavaScript in the final stage, a numeric non-root user, exec-form entry point with relayd's node
 * flags, and a build context that carries nothing but the sources.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RELAY_PORTS } from '../../api/fleet.ts';
import { RELAYD_NODE_FLAGS } from '../../relay/runtime-flags.ts';
import { kustomize, MANIFESTS_ROOT } from './kustomize.ts';

const ROOT = join(MANIFESTS_ROOT, '..');

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions: continuation lines joined, comments dropped. */
function instructions(text: string): Instruction[] {
  const logical = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));
  return logical.map((line) => {
    const [keyword, ...rest] = line.split(/\s+/);
    return { keyword: keyword!.toUpperCase(), args: rest.join(' ') };
  });
}

interface Stage {
  from: string;
  name: string | null;
  steps: Instruction[];
}

function stages(list: Instruction[]): { globals: Instruction[]; stages: Stage[] } {
  const globals: Instruction[] = [];
  const result: Stage[] = [];
  for (const step of list) {
    if (step.keyword === 'FROM') {
      const [from, as, name] = step.args.split(/\s+/);
      result.push({ from: from!, name: as?.toUpperCase() === 'AS' ? name! : null, steps: [] });
    } else if (result.length === 0) globals.push(step);
    else result.at(-1)!.steps.push(step);
  }
  return { globals, stages: result };
}

/** .dockerignore as Docker reads it: the last pattern that matches a path, or one of its parent folders, wins. */
function contextIncludes(patterns: string[], path: string): boolean {
  const toRegExp = (glob: string): RegExp => new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*/g, '\u0000').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]').replace(/\u0000/g, '.*')}$`);
  const parts = path.split('/');
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let included = true;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const pattern = toRegExp((negated ? raw.slice(1) : raw).replace(/^\/+|\/+$/g, ''));
    if (prefixes.some((prefix) => pattern.test(prefix))) included = negated;
  }
  return included;
}

const dockerfile = stages(instructions(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')));
const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));
const [build, final] = dockerfile.stages;
const runs = (stage: Stage): string => stage.steps.filter((s) => s.keyword === 'RUN').map((s) => s.args).join(' && ');
const execForm = (args: string): string[] => JSON.parse(args) as string[];

describe('the relay Dockerfile', () => {
  it('is two stages on one Node 24 slim base pinned by exact tag (the version package-lock.json pins) or digest', () => {
    expect(dockerfile.stages.map((s) => s.name)).toEqual(['build', null]);
    const arg = dockerfile.globals.find((g) => g.keyword === 'ARG' && g.args.startsWith('NODE_IMAGE='));
    const image = arg!.args.slice('NODE_IMAGE='.length);
    const match = /^node:(\d+\.\d+\.\d+)-[a-z]+-slim(@sha256:[0-9a-f]{64})?$/.exec(image);
    expect(match, image).not.toBeNull();
    const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string }> };
    expect(match![1]).toBe(lock.packages['node_modules/node']!.version);
    expect(match![1]!.split('.')[0]).toBe('24');
    for (const stage of dockerfile.stages) expect(stage.from).toBe('${NODE_IMAGE}');
  });

  it('builds the native addon and the JavaScript in the build stage, then keeps only production dependencies', () => {
    const commands = runs(build!);
    expect(commands).toMatch(/apt-get install [^&]*\bpython3\b/);
    expect(commands).toMatch(/apt-get install [^&]*\bmake\b/);
    expect(commands).toMatch(/apt-get install [^&]*\bg\+\+/);
    expect(commands).toContain('npm ci');
    expect(commands).toContain('npm run build');
    expect(commands).toMatch(/npm prune --omit=dev/);
    // The lock file comes in before the sources, so dependency layers survive source changes.
    const copies = build!.steps.filter((s) => s.keyword === 'COPY').map((s) => s.args);
    expect(copies[0]).toBe('package.json package-lock.json ./');
    // Every source file the build compiles is copied in (tsc's own list of the program's files).
    const listed = spawnSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--listFilesOnly'], { encoding: 'utf8', timeout: 60_000 });
    expect(listed.status, listed.stdout + listed.stderr).toBe(0);
    const sources = listed.stdout.split('\n').filter((file) => file.startsWith(ROOT) && !file.includes('/node_modules/')).map((file) => relative(ROOT, file));
    expect(sources).toContain('relay/main.ts');
    const copiedPaths = copies.flatMap((args) => args.split(/\s+/).slice(0, -1));
    expect(sources.filter((file) => !copiedPaths.some((path) => file === path || file.startsWith(`${path}/`)))).toEqual([]);
  });

  it('the final stage holds compiled JavaScript and production dependencies only, and builds nothing', () => {
    const copies = final!.steps.filter((s) => s.keyword === 'COPY').map((s) => s.args);
    expect(copies).toEqual(['--from=build /src/node_modules ./node_modules', '--from=build /src/dist ./dist']);
    const commands = runs(final!);
    for (const tool of ['apt-get install', 'npm ci', 'npm install', 'npm run', 'tsc']) expect(commands, tool).not.toContain(tool);
    expect(final!.steps.find((s) => s.keyword === 'WORKDIR')?.args).toBe('/app');
    expect(final!.steps.find((s) => s.keyword === 'ENV')?.args).toBe('NODE_ENV=production');
  });

  it('runs as a numeric non-root user: the one the manifests run as', () => {
    const users = final!.steps.filter((s) => s.keyword === 'USER');
    expect(users).toHaveLength(1);
    const [uid, gid] = users[0]!.args.split(':').map(Number);
    expect(uid).toBeGreaterThan(0);
    expect(gid).toBeGreaterThan(0);
    const pod = kustomize(join(MANIFESTS_ROOT, 'base')).find((o) => o.kind === 'StatefulSet')!.spec.template.spec;
    expect([pod.securityContext.runAsUser, pod.securityContext.runAsGroup]).toEqual([uid, gid]);
  });

  it('starts the compiled relayd with its node flags, in exec form: no shell needed at run time', () => {
    const entry = final!.steps.filter((s) => s.keyword === 'ENTRYPOINT');
    expect(entry).toHaveLength(1);
    expect(execForm(entry[0]!.args)).toEqual(['node', ...RELAYD_NODE_FLAGS, '/app/dist/relay/main.js']);
    for (const step of final!.steps.filter((s) => ['CMD', 'HEALTHCHECK'].includes(s.keyword))) expect(() => execForm(step.args), step.keyword).not.toThrow();
    expect(final!.steps.some((s) => s.keyword === 'SHELL')).toBe(false);
  });

  it('exposes the contract ports', () => {
    const exposed = final!.steps.filter((s) => s.keyword === 'EXPOSE').flatMap((s) => s.args.split(/\s+/)).sort();
    expect(exposed).toEqual(Object.values(RELAY_PORTS).map(({ port, protocol }) => `${port}/${protocol.toLowerCase()}`).sort());
  });
});

describe('.dockerignore', () => {
  it('sends the builder only the sources the Dockerfile copies', () => {
    const copied = build!.steps.filter((s) => s.keyword === 'COPY' && !s.args.startsWith('--from')).flatMap((s) => s.args.split(/\s+/).slice(0, -1));
    for (const source of copied) expect(contextIncludes(ignore, source), source).toBe(true);
    for (const path of ['relay/main.ts', 'relay/startup/kubernetes-api.ts', 'api/fleet.ts', 'lib/duration.ts', 'cli/main.ts', 'orchestrator/index.ts', 'client/index.ts']) {
      expect(contextIncludes(ignore, path), path).toBe(true);
    }
    for (const path of ['node_modules/undici/index.js', 'dist/relay/main.js', '.git/HEAD', '.relayctl/pki/ca-key.pem', 'test/e2e/relay.test.ts', 'bench/lib.ts', 'README.md', 'manifests/base/rbac.yaml', 'Dockerfile']) {
      expect(contextIncludes(ignore, path), path).toBe(false);
    }
  });
});
