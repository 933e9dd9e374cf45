import type { ServerResponse } from 'node:http';
import type { ReadyzResponse, RelayState } from '../../api/management.ts';
import { MANAGEMENT_PATHS } from '../../api/management.ts';
import { sendJson } from './server.ts';

/**
 * /livez, /readyz and /metrics: served on the mutual-TLS management port and on the plain-HTTP health
 * port alike, from one implementation.
 */
export interface ProbeSource {
  readonly ready: boolean;
  readonly state: RelayState;
  /** Why the relay is not ready, when it is not. */
  readonly notReadyReason: string | null;
  renderMetrics(): Promise<{ contentType: string; text: string }>;
}

export interface ProbeRoute {
  method: 'GET';
  path: string;
  handle(response: ServerResponse): Promise<void> | void;
}

export function probeRoutes(source: ProbeSource): ProbeRoute[] {
  return [
    {
      method: 'GET',
      path: MANAGEMENT_PATHS.livez,
      // Alive whatever the state: a relay paused in a handover or forwarding stragglers is doing its job,
      // and restarting it would lose exactly the sessions it is moving. Only a process that cannot answer
      // at all (wedged event loop) fails this probe, by not answering.
      handle: (response) => sendJson(response, 200, { live: true, state: source.state }),
    },
    {
      method: 'GET',
      path: MANAGEMENT_PATHS.readyz,
      handle: (response) => {
        const body: ReadyzResponse = { ready: source.ready, state: source.state, reason: source.notReadyReason };
        sendJson(response, source.ready ? 200 : 503, body);
      },
    },
    {
      method: 'GET',
      path: MANAGEMENT_PATHS.metrics,
      handle: async (response) => {
        const { contentType, text } = await source.renderMetrics();
        response.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
        response.end(text);
      },
    },
  ];
}
