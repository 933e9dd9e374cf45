import { processIo } from './io.ts';
import { run } from './program.ts';

/**
 * The relayctl executable (bin/relayctl.js imports this). Exits explicitly once stdout and stderr are flushed:
 * platform clients may keep sockets or agents open that would otherwise hold the process.
 */
// `relayctl status | head -1`: a reader that goes away is not an error of ours.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}
const code = await run(process.argv.slice(2), processIo());
await Promise.all([flush(process.stdout), flush(process.stderr)]);
process.exit(code);

function flush(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    if (!stream.writableNeedDrain) resolve();
    else stream.once('drain', () => resolve());
  });
}
