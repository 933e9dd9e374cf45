import { Writable } from 'node:stream';
import type { ServerResponse } from 'node:http';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { syntheticSessions } from '../support/synthetic-predecessor.ts';
import type { HandoverHost } from '../../relay/handover/host.ts';
import { HandoverSource } from '../../relay/handover/source.ts';
import { jsonRequest } from '../support/mgmt-doubles.ts';

/** A successor that reads nothing and then disappears while the old relay is still writing. */
class StalledResponse extends Writable {
  /** Resolves when the old relay has filled the buffer and waits for 'drain'. */
  readonly backedUp: Promise<void>;
  #backedUp: () => void = () => undefined;

  constructor() {
    super({ highWaterMark: 1024, write: () => undefined }); // never calls back: the stream backs up
    this.backedUp = new Promise((resolve) => (this.#backedUp = resolve));
  }
  override write(chunk: unknown, ...rest: never[]): boolean {
    const more = super.write(chunk, ...rest);
    if (!more) this.#backedUp();
    return more;
  }
  writeHead(): this {
    return this;
  }
}

describe('HandoverSource', () => {
  it('resumes serving at once when the successor goes away in the middle of the state stream', async () => {
    const events: string[] = [];
    let resumed: () => void = () => undefined;
    const resumedNow = new Promise<void>((resolve) => (resumed = resolve));
    const sessions = syntheticSessions(5_000);
    const host = {
      podName: 'relay-a-0',
      state: 'serving',
      log: pino({ level: 'silent' }),
      tunnelPort: 9,
      // A session source whose sessions export as themselves.
      adapter: { allSessions: () => sessions.values(), exportSession: (session: unknown) => session },
      tunnel: { open: async () => undefined, shut: () => events.push('tunnel shut') },
      pause: () => {
        host.state = 'handing-over';
        events.push('paused');
      },
      resume: (reason: string) => {
        host.state = 'serving';
        events.push(`resumed: ${reason}`);
        resumed();
        return 0;
      },
    };
    const source = new HandoverSource(host as unknown as HandoverHost);
    const response = new StalledResponse();
    const handled = source.handle(jsonRequest({ successor: 'relay-b-0', tunnelPort: 9, tunnelKey: Buffer.alloc(32).toString('base64'), commitTimeoutMs: 60_000 }), response as unknown as ServerResponse);
    // 5,000 sessions are far more than the stalled stream takes: the old relay waits for 'drain'.
    await response.backedUp;
    expect(events).toEqual(['paused']);
    expect(source.active).toBe(true);
    response.destroy();
    await resumedNow;
    expect(events).toEqual(['paused', 'tunnel shut', 'resumed: the state stream broke before it was complete']);
    expect(host.state).toBe('serving');
    expect(source.active).toBe(false);
    void handled.catch(() => undefined);
  });
  it('pauses only once no session is on offer to a sibling\'s claim: an offered session may be leaving', async () => {
    const events: string[] = [];
    const closers: Array<() => void> = [];
    const host = {
      podName: 'relay-a-0',
      state: 'serving',
      log: pino({ level: 'silent' }),
      tunnelPort: 9,
      adapter: { allSessions: () => [].values(), exportSession: (session: unknown) => session },
      tunnel: { open: async () => undefined, shut: () => undefined },
      // Two offers open, settled one after the other.
      openOffers: 2,
      get offering() {
        return host.openOffers > 0;
      },
      offersClosed: () => new Promise<void>((resolve) => closers.push(resolve)),
      pause: () => {
        host.state = 'handing-over';
        events.push('paused');
      },
      resume: () => 0,
    };
    const source = new HandoverSource(host as unknown as HandoverHost);
    const response = new StalledResponse();
    const handled = source.handle(jsonRequest({ successor: 'relay-b-0', tunnelPort: 9, tunnelKey: Buffer.alloc(32).toString('base64'), commitTimeoutMs: 60_000 }), response as unknown as ServerResponse);
    const settleOne = async (): Promise<void> => {
      await new Promise<void>((resolve) => {
        const poll = (): void => void (closers.length > 0 ? resolve() : setImmediate(poll));
        poll();
      });
      expect(events).toEqual([]);
      host.openOffers--;
      closers.shift()!();
    };
    await settleOne();
    await settleOne();
    await new Promise<void>((resolve) => {
      const poll = (): void => void (events.length > 0 ? resolve() : setImmediate(poll));
      poll();
    });
    expect(events).toEqual(['paused']);
    response.destroy();
    void handled.catch(() => undefined);
  });
});
