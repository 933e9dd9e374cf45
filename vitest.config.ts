import { defineConfig } from 'vitest/config';
import { requireNode } from './bin/require-node.js';

// The config is the first of the project's code vitest runs. On an old Node (the system's, when vitest is started
// as ./node_modules/.bin/vitest or `node node_modules/vitest/vitest.mjs`) the tests that spawn relayd fail, and
// vitest's own failure report then dies on Map.groupBy: say so here instead, before anything runs.
requireNode('vitest', "Run the tests on the project's Node 24: npm test, or npx vitest run <file> (npm and npx put node_modules/.bin/node first on PATH).");

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Network tests spawn relays and thousands of sockets; two cores cannot run many files at once.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
