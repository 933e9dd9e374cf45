/**
 * A byte stream to a pod's port through the API server (`pods/portforward` over WebSocket, client-node's
 * PortForward): one WebSocket per stream, one TCP connection to the pod behind it. The management client runs its
 * mutual TLS inside (api/management-client.ts `tunnel`), so the API server and the kubelet only ever see ciphertext.
 *
 * The stream ends when either side closes; the kubelet's error channel (a refused port, a pod without network)
 * destroys it with that message. A WebSocket ping every 30 s keeps idle load balancers from cutting a tunnel that
 * carries a restore taking minutes.
 */
import { Duplex, PassThrough, Writable } from 'node:stream';
import { PortForward, type KubeConfig } from '@kubernetes/client-node';
import { WebSocketHandler } from '@kubernetes/client-node/dist/web-socket-handler.js';
import type { Tunnel } from '../../../api/management-client.ts';
import type { ApiCall } from './kube-errors.ts';

export interface PortForwardOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** Maps a refused WebSocket upgrade (403, 404...) to the platform's error for `call`. */
  describeFailure: (error: unknown, call: ApiCall) => Error;
  pingIntervalMs?: number;
}

type ForwardSocket = Exclude<Awaited<ReturnType<PortForward['portForward']>>, () => unknown>;

/** Opens tunnels to `<host>:<port>` where host is a pod name of the namespace. */
export function portForwardTunnel(options: PortForwardOptions): Tunnel {
  // The default handler would write close-stream frames to this process's stdin and stdout; ours go nowhere.
  const handler = new WebSocketHandler(options.kubeConfig, undefined, {
    stdin: new PassThrough(),
    stdout: new PassThrough(),
    stderr: new PassThrough(),
  });
  const forward = new PortForward(options.kubeConfig, true, handler);
  const pingIntervalMs = options.pingIntervalMs ?? 30_000;
  return async ({ host: pod, port }) => {
    // A WebSocket port-forward is an HTTP GET; API servers from 1.35 on check create as well.
    const call: ApiCall = { verb: 'get', alsoVerbs: ['create'], group: '', resource: 'pods/portforward', namespace: options.namespace, name: pod };
    const toPod = new PassThrough();
    let socket: ForwardSocket | null = null;
    let ping: NodeJS.Timeout | undefined;
    const stream = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, callback) {
        toPod.write(chunk, callback);
      },
      final(callback) {
        toPod.end();
        callback();
      },
      destroy(error, callback) {
        clearInterval(ping);
        socket?.close();
        callback(error);
      },
    });
    const fromPod = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        if (chunk.length > 0) stream.push(chunk);
        callback();
      },
    });
    const errors = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        const text = chunk.toString('utf8').trim();
        if (text !== '') stream.destroy(new Error(`port-forward to pod ${pod} port ${port}: ${text}`));
        callback();
      },
    });
    let opened: Awaited<ReturnType<PortForward['portForward']>>;
    try {
      // No retries (retryCount 0): the helper hands back the WebSocket itself.
      opened = await forward.portForward(options.namespace, pod, [port], fromPod, errors, toPod);
    } catch (error) {
      stream.destroy();
      throw options.describeFailure(error, call);
    }
    if (typeof opened === 'function') throw new TypeError('PortForward returned a reconnecting handle; expected a WebSocket');
    const ws: ForwardSocket = opened;
    socket = ws;
    ws.on('close', () => {
      clearInterval(ping);
      stream.push(null);
    });
    ws.on('error', (error: Error) => stream.destroy(error));
    ping = setInterval(() => ws.ping(), pingIntervalMs);
    ping.unref();
    return stream;
  };
}
