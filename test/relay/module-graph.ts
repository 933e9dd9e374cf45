/** Which modules a program loads: a static walk of its imports, and a hook that records what Node resolved. */
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const RELAYCTL_ONLY_PACKAGES = ['@kubernetes/client-node', 'yaml', 'ws', 'kubernetes-models'];
export const RELAYCTL_ONLY_FOLDERS = ['orchestrator/', 'cli/', 'bench/', 'test/'];

/** Static imports, re-exports, dynamic import('...') and require('...'); `import type` is erased and left out. */
export const SPECIFIERS = /(?:^|[\s;])(?:import(?!\s+type\s)(?:[\s\w{},*]*?from)?|export(?!\s+type\s)[\s\w{},*]*?from)\s*['"]([^'"]+)['"]|(?:import|require)\s*\(\s*['"]([^'"]+)['"]\s*\)/g;

export function staticGraph(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const pending = [resolve(entry)];
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, '');
    for (const match of text.matchAll(SPECIFIERS)) {
      const specifier = (match[1] ?? match[2])!;
      if (specifier.startsWith('.')) {
        if (!specifier.endsWith('.json')) pending.push(resolve(dirname(file), specifier));
      } else if (!specifier.startsWith('node:')) {
        packages.add(specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!);
      }
    }
  }
  return { files: [...files].map((file) => relative(ROOT, file)).sort(), packages: [...packages].sort() };
}

/** A module hook that prints, at exit, every module URL Node resolved (ESM and require alike). */
export const RECORD_IMPORTS = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from 'node:module';
const seen = new Set();
registerHooks({ resolve(specifier, context, next) { const result = next(specifier, context); seen.add(result.url); return result; } });
process.on('exit', () => process.stderr.write('\\nRESOLVED ' + JSON.stringify([...seen]) + '\\n'));
`)}`;

export function resolvedBy(stderr: string): string[] {
  const line = stderr.split('\n').find((l) => l.startsWith('RESOLVED '));
  if (line === undefined) throw new Error(`no RESOLVED line in:\n${stderr}`);
  return JSON.parse(line.slice('RESOLVED '.length)) as string[];
}

export function packageOf(url: string): string | null {
  const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  return match === null ? null : match[1]!;
}
