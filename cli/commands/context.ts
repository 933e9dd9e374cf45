import type { Io } from '../io.ts';
import type { GlobalOptions } from '../options.ts';
import type { PlatformProvider } from '../platforms.ts';

/** What every command gets: the process (io), the checked global flags, and where platforms come from. */
export interface CommandContext {
  readonly io: Io;
  readonly globals: GlobalOptions;
  readonly platforms: PlatformProvider;
  /** Lock holder and record owner, e.g. `alice@laptop:4711`. */
  readonly owner: string;
  /** Tests pass fixed update ids. */
  readonly newUpdateId?: () => string;
}
