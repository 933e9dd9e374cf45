import http from 'node:http';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RelayState } from '../../api/management.ts';
import { HEALTH_LIMITS, HealthServer } from '../../relay/mgmt/health-server.ts';
import type { ProbeSource } from '../../relay/mgmt/probes.ts';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function call(port: number, options: http.RequestOptions & { body?: string } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = http.request({ host: '127.0.0.1', port, agent: false, timeout: 5_000, ...options }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body }));
      response.on('error', reject);
    });
    request.on('error', reject);
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.end(options.body);
  });
}

/** Sends raw bytes and returns everything the server wrote before it closed the connection. */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
    socket.setTimeout(5_000, () => socket.destroy(new Error('timed out')));
  });
}

describe('the plain-HTTP health port', () => {
  const source = { ready: false, state: 'starting' as RelayState, notReadyReason: 'starting' as string | null, scrapes: 0 };
  const probes: ProbeSource = {
    get ready() { return source.ready; },
    get state() { return source.state; },
    get notReadyReason() { return source.notReadyReason; },
    renderMetrics: async () => ({ contentType: 'text/plain; version=0.0.4; charset=utf-8', text: `relay_scrapes ${++source.scrapes}\n` }),
  };
  const server = new HealthServer(probes, (error) => { throw error; });
  let port = 0;

  beforeAll(async () => {
    port = (await server.listen(0, '127.0.0.1')).port;
  });
  afterAll(() => server.close());

  const set = (state: RelayState, reason: string | null): void => {
    source.state = state;
    source.ready = state === 'serving';
    source.notReadyReason = reason;
  };

  it('is live in every state, paused in a handover and forwarding included; ready only when serving', async () => {
    const states: Array<[RelayState, string | null]> = [
      ['awaiting-restore', 'waiting for POST /v1/restore'], ['restoring', 'restoring from x'], ['serving', null],
      ['handing-over', 'handing over to relay-b-0'], ['forwarding', 'handed over to relay-b-0; forwarding stragglers'],
    ];
    for (const [state, reason] of states) {
      set(state, reason);
      const live = await call(port, { path: '/livez' });
      expect(live.status, state).toBe(200);
      expect(JSON.parse(live.body)).toEqual({ live: true, state });
      const ready = await call(port, { path: '/readyz' });
      expect(ready.status, state).toBe(state === 'serving' ? 200 : 503);
      expect(JSON.parse(ready.body)).toEqual({ ready: state === 'serving', state, reason });
    }
  });

  it('serves Prometheus metrics, and answers HEAD without a body', async () => {
    const metrics = await call(port, { path: '/metrics' });
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(metrics.body).toMatch(/^relay_scrapes \d+\n$/);
    const head = await call(port, { path: '/readyz', method: 'HEAD' });
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBeDefined();
  });

  it('serves nothing else: /v1/ stays on the mutual-TLS port', async () => {
    for (const path of ['/v1/status', '/v1/restore', '/', '/livez/../v1/status']) {
      const answer = await call(port, { path });
      expect(answer.status, path).toBe(404);
      expect(JSON.parse(answer.body).error.code).toBe('ERR_NOT_FOUND');
    }
    expect((await call(port, { path: '/readyz?verbose=1' })).status).toBeOneOf([200, 503]);
  });

  it('refuses other methods and any request body, closing the connection on a body', async () => {
    const post = await call(port, { path: '/livez', method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
    const withBody = await raw(port, 'GET /livez HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello');
    expect(withBody).toMatch(/^HTTP\/1\.1 413 /);
    expect(withBody).toMatch(/connection: close/i);
    const chunked = await raw(port, 'GET /livez HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    expect(chunked).toMatch(/^HTTP\/1\.1 413 /);
  });

  it('refuses headers over the limit with 400 and closes', async () => {
    const answer = await raw(port, `GET /livez HTTP/1.1\r\nhost: x\r\nx-big: ${'a'.repeat(HEALTH_LIMITS.maxHeaderBytes)}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 4\d\d /);
  });

  it(`holds at most ${HEALTH_LIMITS.maxConnections} connections`, async () => {
    const idle: net.Socket[] = [];
    try {
      for (let i = 0; i < HEALTH_LIMITS.maxConnections; i++) {
        idle.push(await new Promise<net.Socket>((resolve, reject) => {
          const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
          socket.on('error', reject);
        }));
      }
      // The server counts a connection once it accepted it: make sure all of them were.
      await Promise.all(idle.map((socket) => new Promise<void>((resolve) => socket.write('GET /livez HTTP/1.1\r\nhost: x\r\n\r\n', () => socket.once('data', () => resolve())))));
      const refused = await raw(port, 'GET /livez HTTP/1.1\r\nhost: x\r\n\r\n');
      expect(refused).toBe('');
    } finally {
      for (const socket of idle) socket.destroy();
    }
  });
});
