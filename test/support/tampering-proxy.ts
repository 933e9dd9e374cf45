import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { Agent, request } from 'undici';
import { relayClientTlsOptions, relayServerTlsOptions, type LocalPki } from '../../orchestrator/platform/local/pki.ts';

export type TamperMode =
  | { kind: 'truncate'; atBytes: number }
  | { kind: 'corrupt'; atByte: number }
  /** Pass the headers, hold the body until release(), then break the stream. */
  | { kind: 'stall' }
  /** Hold the whole answer (the old relay has streamed it and waits, paused) until release(), then pass it on. */
  | { kind: 'hold' };

/**
 * A man in the middle with a valid relay certificate, between a new relay and an old one. It passes
 * every call through but tampers with the state stream of POST /v1/handover, so tests can show what
 * a truncated, corrupted or stalled stream does to both relays, or holds it to act while the old relay is paused.
 */
export class StateTamperingProxy {
  aborts = 0;
  private readonly server: https.Server;
  private readonly agent: Agent;
  private readonly target: string;
  private readonly mode: TamperMode;
  /** Resolves on release(), whether the stream reached the proxy before or after. */
  private readonly released: Promise<void>;
  private releaseHeld: () => void = () => undefined;

  constructor(options: { target: string; pki: LocalPki; mode: TamperMode }) {
    this.target = options.target;
    this.mode = options.mode;
    this.released = new Promise((resolve) => (this.releaseHeld = resolve));
    this.agent = new Agent({ connect: relayClientTlsOptions(options.pki) });
    this.server = https.createServer(relayServerTlsOptions(options.pki), (req, res) => {
      void this.handle(req, res).catch(() => res.destroy());
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  release(): void {
    this.releaseHeld();
  }

  async close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.agent.close();
  }

  private async handle(req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    if (req.url === '/v1/handover/abort') this.aborts++;
    const upstream = await request(new URL(req.url!, this.target), {
      method: req.method as 'GET' | 'POST',
      headers: { 'content-type': req.headers['content-type'] ?? 'application/json' },
      body: chunks.length > 0 ? Buffer.concat(chunks) : undefined,
      dispatcher: this.agent,
    });
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(upstream.headers)) {
      if (typeof value === 'string' && name !== 'content-length' && name !== 'transfer-encoding' && name !== 'connection' && name !== 'keep-alive') headers[name] = value;
    }
    res.writeHead(upstream.statusCode, headers);
    if (req.url !== '/v1/handover' || upstream.statusCode !== 200) {
      for await (const chunk of upstream.body) res.write(chunk);
      res.end();
      return;
    }
    const body = Buffer.concat(await collect(upstream.body));
    const mode = this.mode;
    if (mode.kind === 'truncate') {
      res.end(body.subarray(0, Math.min(mode.atBytes, body.length - 1)));
    } else if (mode.kind === 'corrupt') {
      const tampered = Buffer.from(body);
      const at = Math.min(mode.atByte, tampered.length - 40);
      tampered[at] = tampered[at]! ^ 0x01;
      res.end(tampered);
    } else if (mode.kind === 'hold') {
      await this.released;
      res.end(body);
    } else {
      res.flushHeaders();
      await Promise.race([this.released, new Promise((resolve) => res.on('close', resolve))]);
      res.destroy();
    }
  }
}

async function collect(body: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const chunk of body) out.push(chunk);
  return out;
}
