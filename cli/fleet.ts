import { NotFoundError, UsageError } from './errors.ts';
import { DEFAULT_NAME, type GlobalOptions } from './options.ts';
import type { FleetListing, PlatformProvider } from './platforms.ts';

/**
 * Which fleet a command acts on, as kubectl and the Argo Rollouts plugin take a name: the NAME argument or
 * --name when given, else the current fleet (the only one where the flags point: the fleet deployed in
 * --state-dir; on Kubernetes the only one in the namespace).
 *
 * - existing: the fleet must exist (update, status, abort, rollback); NotFound says what to deploy.
 * - known: a named fleet must be the one there when there is one (teardown, which stops whatever is there);
 *   with none, the default name. A state that cannot be read does not stop it: teardown is how to clean it up.
 * - create: the named one, the current one, or the default name (deploy makes it).
 */
export type FleetNeed = 'existing' | 'known' | 'create';

export async function resolveFleet(platforms: PlatformProvider, globals: GlobalOptions, need: FleetNeed): Promise<string> {
  if (need === 'create' && globals.nameGiven) return globals.name;
  let listing: FleetListing;
  try {
    listing = await platforms.fleets(globals);
  } catch (error) {
    if (need === 'known') return globals.name;
    throw error;
  }
  const { names } = listing;
  if (globals.nameGiven) {
    if (names.includes(globals.name) || (need === 'known' && names.length === 0)) return globals.name;
    const there = names.length === 0 ? `no fleet is deployed in ${listing.where}` : `${listing.where} holds ${quoteList(names)}`;
    const hint = names.length === 0 ? `Deploy it with "${listing.deployCommand(globals.name)}".` : `Name one of them (NAME or --name), or deploy "${globals.name}" first.`;
    throw new NotFoundError(`fleet "${globals.name}" not found: ${there}`, hint);
  }
  if (names.length === 1) return names[0] as string;
  if (names.length === 0) {
    if (need !== 'existing') return DEFAULT_NAME;
    throw new NotFoundError(`no fleet found: nothing is deployed in ${listing.where}`, `Deploy one with "${listing.deployCommand()}".`);
  }
  throw new UsageError(`${listing.where} holds ${names.length} fleets (${quoteList(names)}): name the one you mean, as NAME or --name`);
}

function quoteList(names: readonly string[]): string {
  return names.map((name) => `"${name}"`).join(', ');
}
