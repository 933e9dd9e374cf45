// Plain JavaScript, so that it runs (and explains) even on a Node too old to strip TypeScript types.
import { requireNode } from './require-node.js';

requireNode(
  process.argv[1],
  'Run it through npm, which puts the project\'s own Node 24 first on PATH: npm run relayctl -- <args>, npm run relayd -- <args>, or npx relayctl.',
);
