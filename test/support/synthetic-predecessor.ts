import { randomBytes, randomUUID } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { HANDOVER_HEADERS, STATE_CONTENT_TYPE } from '../../api/management.ts';
import { encodeSessionChunks } from '../../api/state-codec.ts';
import type { SessionState } from '../../api/state-format.ts';
import { generateDeviceKey } from '../../client/index.ts';
import { relayServerTlsOptions, type LocalPki } from '../../orchestrator/platform/local/pki.ts';

/**
 * A stand-in old relay that hands over N synthetic sessions (valid by format, with no device behind
 * them), so benchmarks can put 100,000 sessions into a real relayd without 100,000 handshakes.
 * Addresses are on 127.0.0.0/8; nothing is ever sent to them unless a device with that address speaks.
 */
export function syntheticSessions(count: number): SessionState[] {
  const keys = Array.from({ length: 64 }, () => generateDeviceKey().spki);
  const now = Date.now();
  const sessions: SessionState[] = [];
  for (let i = 0; i < count; i++) {
    const top = 1000 + (i % 5000);
    const window = Buffer.alloc(8);
    window[7] = 1;
    sessions.push({
      peer: { address: `127.${100 + ((i >> 16) & 0x7f)}.${(i >> 8) & 0xff}.${i & 0xff}`, port: 10_000 + (i % 50_000) },
      deviceKey: keys[i % keys.length]!,
      dtls: { cipherSuite: 0xc0ae, randoms: randomBytes(64), sessionId: randomBytes(32), master: randomBytes(48), inEpoch: 1, outEpoch: 1, outSeq: 500 + (i % 7000) },
      replay: { epoch: 1, top, window },
      createdAt: now - 3_600_000,
      lastSeenAt: now - (i % 60_000),
      upstream: { identity: null },
    });
  }
  return sessions;
}

export class SyntheticPredecessor {
  private readonly server: https.Server;
  commits = 0;

  constructor(pki: LocalPki, sessions: SessionState[]) {
    this.server = https.createServer(relayServerTlsOptions(pki), (req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url === '/v1/handover') {
          res.writeHead(200, { 'content-type': STATE_CONTENT_TYPE, [HANDOVER_HEADERS.id]: randomUUID(), [HANDOVER_HEADERS.tunnelPort]: '9' });
          for (const chunk of encodeSessionChunks({ source: 'synthetic', createdAt: Date.now(), count: sessions.length }, sessions)) res.write(chunk);
          res.end();
        } else if (req.url === '/v1/handover/commit') {
          this.commits++;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ handoverId: 'synthetic', pauseMs: 0, queuedForwarded: 0 }));
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end('{}');
        }
      });
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', () => resolve()));
    return `https://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
