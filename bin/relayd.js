#!/usr/bin/env -S node --max-semi-space-size=4
// Node >= 22.18 runs the TypeScript sources directly (type stripping), so there is no build step.
// The flag is relay/runtime-flags.ts's: a small young generation (see there why).
import './check-node.js';
await import('../relay/main.ts');
