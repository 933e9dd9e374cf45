/**
 * Encode and decode rate of the session state codec, and bytes per session.
 * Run: node bench/state-codec.bench.ts   (the project's Node 24: node_modules/.bin/node)
 *
 * Sessions look like production ones: IPv4 peers, 91-byte P-256 SPKI keys, 32-byte session ids, a 16-char
 * upstream identity, sequence numbers and ages of realistic size. Decoding is fed 64 KiB chunks, as HTTP delivers.
 */
import { randomBytes } from 'node:crypto';
import { StateDecoder, encodeSessionChunks } from '../api/state-codec.ts';
import type { SessionState } from '../api/state-format.ts';

const NOW = Date.UTC(2025, 0, 1);

function makeSessions(n: number): SessionState[] {
  const sessions: SessionState[] = [];
  for (let i = 0; i < n; i++) {
    const top = 1000 + (i % 50_000);
    sessions.push({
      peer: { address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 1024 + (i % 60_000) },
      deviceKey: Buffer.concat([Buffer.from('3059301306072a8648ce3d020106082a8648ce3d030107034200', 'hex'), randomBytes(65)]),
      dtls: {
        cipherSuite: 0xc0ae,
        randoms: randomBytes(64),
        sessionId: randomBytes(32),
        master: randomBytes(48),
        inEpoch: 1,
        outEpoch: 1,
        outSeq: 500 + i * 7,
      },
      replay: { epoch: 1, top, window: Buffer.from('ffffffffffffffff', 'hex') },
      createdAt: NOW - 3_600_000 - (i % 86_400_000),
      lastSeenAt: NOW - (i % 30_000),
      upstream: { identity: randomBytes(8).toString('hex') },
    });
  }
  return sessions;
}

function encode(sessions: SessionState[]): Buffer[] {
  return [...encodeSessionChunks({ source: 'relay-blue-0', createdAt: NOW }, sessions)];
}

function decode(chunks: Buffer[]): number {
  const decoder = new StateDecoder({ now: NOW + 1000 });
  for (const chunk of chunks) decoder.push(chunk);
  return decoder.finish().sessions.length;
}

/** Best of several runs: the rate the code can reach, not the GC's worst moment. */
function best(runs: number, fn: () => void): number {
  let min = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    fn();
    min = Math.min(min, Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return min;
}

const rate = (n: number, ms: number): string => `${Math.round((n / ms) * 1000).toLocaleString('en-US')}/s`;

console.log(`node ${process.version}`);
console.log('sessions    encode          decode          bytes/session  total bytes  chunks');
for (const n of [1_000, 10_000, 100_000]) {
  const sessions = makeSessions(n);
  const runs = n >= 100_000 ? 5 : 20;
  // Warm up the JIT before measuring.
  for (let w = 0; w < 3; w++) decode(encode(sessions.slice(0, 2_000)));
  let chunks: Buffer[] = [];
  const encMs = best(runs, () => {
    chunks = encode(sessions);
  });
  let decoded = 0;
  const decMs = best(runs, () => {
    decoded = decode(chunks);
  });
  if (decoded !== n) throw new Error(`decoded ${decoded} of ${n} sessions`);
  const total = chunks.reduce((sum, c) => sum + c.length, 0);
  console.log(
    `${String(n).padStart(8)}    ${rate(n, encMs).padEnd(14)}  ${rate(n, decMs).padEnd(14)}  ` +
      `${(total / n).toFixed(1).padStart(13)}  ${String(total).padStart(11)}  ${chunks.length}`,
  );
}
