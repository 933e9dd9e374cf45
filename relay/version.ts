import { readFileSync } from 'node:fs';

/** The package version, read once: relays report it in /v1/status and the CLI in --version. */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
