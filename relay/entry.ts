import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The file relayd starts from, for whoever spawns it (the local platform, tests, benchmarks): relay/main.ts
 * beside this module when the sources run (type stripping), main.js when the build (dist/) runs.
 * RELAYD_COMPILED=1 makes the sources spawn the build's relayd instead (`npm run build` first), so the
 * benchmarks can measure the compiled relay while the tests keep running the sources.
 */
export function relaydMain(env: Readonly<Record<string, string | undefined>> = process.env): string {
  const fromSources = import.meta.url.endsWith('.ts');
  if (!fromSources || env['RELAYD_COMPILED'] !== '1') return fileURLToPath(new URL(fromSources ? './main.ts' : './main.js', import.meta.url));
  const built = fileURLToPath(new URL('../dist/relay/main.js', import.meta.url));
  if (!existsSync(built)) throw new Error(`RELAYD_COMPILED=1 but ${built} does not exist: run npm run build first`);
  return built;
}
