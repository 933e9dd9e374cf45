import { readFile } from 'node:fs/promises';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/**
 * The sibling relays a session may have moved to or from, from `--peers`: a comma-separated list of
 * `host[:mgmtPort]`. A name may resolve to many addresses (a Kubernetes headless Service resolves to
 * every relay pod), so names are looked up again every few seconds. `--peers-file` names a file in
 * the same syntax (commas or new lines), read again as often: a mounted ConfigMap, or the local
 * platform's list of pods. This relay's own addresses are left out.
 */
export const DEFAULT_MGMT_PORT = 8443;
const REFRESH_MS = 5_000;

export interface PeerEntry {
  host: string;
  port: number;
}

export function parsePeers(text: string): PeerEntry[] {
  return text.split(/[,\n]/).map((item) => item.trim()).filter((item) => !item.startsWith('#')).filter((item) => item !== '').map((item) => {
    const match = /^(?:\[([^\]]+)\]|([^:]+|[0-9a-fA-F:]+))(?::(\d+))?$/.exec(item);
    if (match === null) throw new RangeError(`--peers: "${item}" is not host or host:port`);
    const host = match[1] ?? match[2]!;
    const port = match[3] === undefined ? DEFAULT_MGMT_PORT : Number(match[3]);
    if (!(port > 0 && port < 65536)) throw new RangeError(`--peers: "${item}" has no valid port`);
    return { host, port };
  });
}

export class PeerDirectory {
  private readonly entries: readonly PeerEntry[];
  private readonly file: string | null;
  private readonly self: { ports: Set<number>; addresses: Set<string> };
  private urls: string[] = [];
  private refreshedAt = 0;
  private refreshing: Promise<void> | null = null;

  constructor(entries: readonly PeerEntry[], self: { mgmtPort: number; mgmtHost: string }, file: string | null = null) {
    this.entries = entries;
    this.file = file;
    const addresses = new Set<string>([self.mgmtHost]);
    if (self.mgmtHost === '0.0.0.0' || self.mgmtHost === '::') {
      for (const list of Object.values(networkInterfaces())) for (const info of list ?? []) addresses.add(info.address);
    }
    this.self = { ports: new Set([self.mgmtPort]), addresses };
  }

  get configured(): boolean {
    return this.entries.length > 0 || this.file !== null;
  }

  /** Management URLs of the siblings, refreshed when stale. */
  async list(): Promise<string[]> {
    if (Date.now() - this.refreshedAt > REFRESH_MS) {
      this.refreshing ??= this.refresh().finally(() => (this.refreshing = null));
      await this.refreshing;
    }
    return this.urls;
  }

  private async refresh(): Promise<void> {
    const urls: string[] = [];
    let fromFile: PeerEntry[] = [];
    if (this.file !== null) {
      try {
        fromFile = parsePeers(await readFile(this.file, 'utf8'));
      } catch {
        // Missing or half-written: keep what the other sources say until the next refresh.
        fromFile = [];
      }
    }
    for (const entry of [...this.entries, ...fromFile]) {
      let addresses: string[];
      try {
        addresses = isIP(entry.host) !== 0 ? [entry.host] : (await lookup(entry.host, { all: true })).map((a) => a.address);
      } catch {
        continue;
      }
      for (const address of addresses) {
        if (this.self.addresses.has(address) && this.self.ports.has(entry.port)) continue;
        urls.push(`https://${address.includes(':') ? `[${address}]` : address}:${entry.port}`);
      }
    }
    this.urls = [...new Set(urls)];
    this.refreshedAt = Date.now();
  }
}
