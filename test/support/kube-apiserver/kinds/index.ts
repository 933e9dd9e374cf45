/** Every resource the stand-in serves. */
import { Catalogue } from '../resources.ts';
import { APPS_RESOURCES } from './apps.ts';
import { CORE_RESOURCES } from './core.ts';
import { OTHER_RESOURCES } from './others.ts';

export function catalogue(): Catalogue {
  return new Catalogue([...CORE_RESOURCES, ...APPS_RESOURCES, ...OTHER_RESOURCES]);
}
