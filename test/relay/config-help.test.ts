import { describe, expect, test } from 'vitest';
import { parseDuration } from '../../lib/duration.ts';
import { relaydCommand } from '../../relay/config.ts';

describe('relayd --help', () => {
  test('duration defaults are printed Go-style, from the values the flags default to', () => {
    const command = relaydCommand();
    const durations = command.options.filter((option) => option.flags.endsWith('<duration>'));
    expect(durations.map((option) => option.long)).toEqual(expect.arrayContaining(['--handshake-timeout', '--park-after', '--session-expiry']));
    for (const option of durations) {
      if (option.defaultValue === undefined) continue;
      expect(option.defaultValueDescription, option.long).toMatch(/^(\d+h)?(\d+m)?(\d+(\.\d+)?s)?(\d+ms)?$/);
      expect(parseDuration(option.defaultValueDescription ?? ''), option.long).toBe(option.defaultValue);
    }
    const help = command.helpInformation().replace(/\s+/g, ' ');
    expect(help).toContain('(default: 24h, env: RELAY_SESSION_EXPIRY)');
  });
});
