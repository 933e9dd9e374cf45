/**
 * The DTLS wire's layering, checked over the source: both ends share api/dtls/ and nothing else of each
 * other, api/ depends on neither end, and one module owns node-mbed-dtls.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, SPECIFIERS, staticGraph } from './module-graph.ts';

function sources(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.ts'))
    .map((file) => join(folder, file));
}

function directSpecifiers(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, '');
  return [...text.matchAll(SPECIFIERS)].map((match) => (match[1] ?? match[2])!);
}

describe('the DTLS wire layering', () => {
  it('only the adapter loads node-mbed-dtls', () => {
    const loaders = ['relay', 'client', 'api', 'cli', 'orchestrator', 'lib', 'pki', 'bench']
      .flatMap(sources)
      .filter((file) => directSpecifiers(file).some((specifier) => specifier.startsWith('node-mbed-dtls')));
    expect(loaders).toEqual(['relay/dtls/adapter.ts']);
  });

  it('api/ depends on neither the relay nor the device client', () => {
    const reached = sources('api').flatMap((file) => staticGraph(join(ROOT, file)).files);
    expect(reached.filter((file) => file.startsWith('relay/') || file.startsWith('client/'))).toEqual([]);
  });

  it('the relay reaches nothing of the device client, and the client nothing of the relay', () => {
    expect(staticGraph(join(ROOT, 'relay/main.ts')).files.filter((file) => file.startsWith('client/'))).toEqual([]);
    const client = staticGraph(join(ROOT, 'client/index.ts')).files;
    expect(client.filter((file) => file.startsWith('relay/'))).toEqual([]);
    // What both ends share, they take from api/dtls.
    expect(client).toEqual(expect.arrayContaining(['api/dtls/record.ts', 'api/dtls/record-protection.ts', 'api/dtls/replay-window.ts', 'api/dtls/prf.ts']));
    expect(staticGraph(join(ROOT, 'relay/main.ts')).files).toEqual(expect.arrayContaining(['api/dtls/record.ts', 'api/dtls/record-protection.ts', 'api/dtls/replay-window.ts', 'api/dtls/prf.ts']));
  });
});
