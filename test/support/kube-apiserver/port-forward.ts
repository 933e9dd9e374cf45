/**
 * pods/portforward over WebSocket, as the API server and kubelet serve it to client-node's PortForward and to
 * kubectl:
 *
 * - `GET /api/v1/namespaces/{ns}/pods/{name}/portforward?ports=N[&ports=M]` upgraded to WebSocket; authorization
 *   (`get` and `create` on pods/portforward) happened before (api-server.ts).
 * - Subprotocol `v4.channel.k8s.io` (binary channels, what the kubelet speaks for port-forward), else
 *   `v5.channel.k8s.io` (v4 plus close frames: `[255, channel]` half-closes a data channel).
 * - Per requested port i: data channel 2i and error channel 2i+1; the first frame on each carries the port as two
 *   bytes little-endian. One TCP connection to the pod's address and port per port, opened at once; bytes flow as
 *   frames `[channel, ...data]`. A connection that cannot be made sends the kubelet's message on the error channel
 *   and closes; when the pod side closes, the WebSocket closes.
 * - The pod must exist (404) and be Running with an IP (400), as in a real cluster.
 */
import net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { UpgradeContext } from './api-server.ts';
import { badRequest } from './errors.ts';
import type { Registry } from './registry.ts';

const PROTOCOLS = ['v4.channel.k8s.io', 'v5.channel.k8s.io'];
const CLOSE_FRAME = 255;

function portFrame(channel: number, port: number): Buffer {
  const frame = Buffer.alloc(3);
  frame[0] = channel;
  frame.writeUInt16LE(port, 1);
  return frame;
}

export class PortForwarder {
  private readonly registry: Registry;
  private readonly server = new WebSocketServer({ noServer: true, handleProtocols: (offered) => PROTOCOLS.find((p) => offered.has(p)) ?? false });
  private readonly open = new Set<WebSocket>();

  constructor(registry: Registry) {
    this.registry = registry;
  }

  /** The upgrade handler; throws a Status error (answered by the caller) before the handshake. */
  handle(context: UpgradeContext): void {
    const { info, url, request, socket, head, entry } = context;
    const ports = url.searchParams.getAll('ports').flatMap((p) => p.split(','));
    if (ports.length === 0) throw badRequest('at least one port must be specified');
    const numbers = ports.map((p) => {
      const n = Number(p);
      if (!/^\d+$/.test(p.trim()) || n < 1 || n > 65535) throw badRequest(`unable to parse port ${JSON.stringify(p)}: invalid port`);
      return n;
    });
    const pod = this.registry.get(this.registry.catalogue.resolve('pods'), info.namespace, info.name);
    const status = (pod.status ?? {}) as { phase?: string; podIP?: string };
    if (status.phase !== 'Running' || !status.podIP) throw badRequest(`unable to upgrade connection: pod ${info.name} is not running (phase ${status.phase ?? 'Unknown'})`);
    const offered = String(request.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (!PROTOCOLS.some((p) => offered.includes(p))) throw badRequest(`unable to upgrade connection: no supported subprotocol among ${JSON.stringify(offered)}; supported: ${PROTOCOLS.join(', ')}`);
    this.server.handleUpgrade(request, socket, head, (ws) => {
      entry.code = 101;
      this.serve(ws, status.podIP!, numbers);
    });
  }

  private serve(ws: WebSocket, address: string, ports: readonly number[]): void {
    this.open.add(ws);
    const sockets: net.Socket[] = [];
    let closing = false;
    const closeAll = (): void => {
      if (closing) return;
      closing = true;
      for (const socket of sockets) socket.destroy();
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close(1000);
    };
    ws.on('close', () => {
      this.open.delete(ws);
      closeAll();
    });
    ws.on('error', () => closeAll());

    ports.forEach((port, index) => {
      const data = 2 * index;
      const error = data + 1;
      ws.send(portFrame(data, port));
      ws.send(portFrame(error, port));
      const socket = net.connect({ host: address, port });
      sockets.push(socket);
      socket.on('data', (chunk: Buffer) => {
        if (ws.readyState === ws.OPEN) ws.send(Buffer.concat([Buffer.of(data), chunk]));
      });
      socket.on('error', (cause: NodeJS.ErrnoException) => {
        const why = cause.code === 'ECONNREFUSED' ? `dial tcp4 ${address}:${port}: connect: connection refused` : cause.message;
        if (ws.readyState === ws.OPEN) ws.send(Buffer.concat([Buffer.of(error), Buffer.from(`an error occurred forwarding ${port} -> ${port}: error forwarding port ${port} to pod: ${why}`)]));
        closeAll();
      });
      socket.on('close', () => closeAll());
    });

    ws.on('message', (message: Buffer, isBinary: boolean) => {
      if (!isBinary || message.length === 0) return;
      const channel = message[0]!;
      if (channel === CLOSE_FRAME && ws.protocol === 'v5.channel.k8s.io') {
        const target = sockets[(message[1] ?? 0) / 2];
        target?.end();
        return;
      }
      if (channel % 2 !== 0) return;
      sockets[channel / 2]?.write(message.subarray(1));
    });
  }

  close(): void {
    for (const ws of this.open) ws.terminate();
    this.open.clear();
    this.server.close();
  }
}
