import manifest from '../package.json' with { type: 'json' };

/**
 * The package version: relays report it in /v1/status and the CLI in --version. Imported rather than
 * read from disk so that the build (tsconfig.build.json) copies package.json into dist/ beside the code.
 */
export const VERSION: string = manifest.version;
