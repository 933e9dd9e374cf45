import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough, Writable } from 'node:stream';
import { StateDecoder } from '../../api/state-codec.ts';
import type { SessionState } from '../../api/state-format.ts';

/** A JSON request as the management server hands it to a route. */
export function jsonRequest(body: unknown, remoteAddress = '127.0.0.1'): IncomingMessage {
  const stream = new PassThrough() as unknown as IncomingMessage & PassThrough;
  stream.headers = { 'content-type': 'application/json' };
  (stream as unknown as { socket: object }).socket = { remoteAddress };
  stream.end(JSON.stringify(body));
  return stream;
}

/** A response that keeps what a route wrote: status, headers and body bytes. */
export class RecordingResponse extends Writable {
  statusCode = 0;
  headers: Record<string, unknown> = {};
  readonly chunks: Buffer[] = [];

  constructor() {
    super({
      write: (chunk: Buffer, _encoding, callback) => {
        this.chunks.push(Buffer.from(chunk));
        callback();
      },
    });
  }

  writeHead(status: number, headers: Record<string, unknown> = {}): this {
    this.statusCode = status;
    this.headers = headers;
    return this;
  }

  get headersSent(): boolean {
    return this.statusCode !== 0;
  }

  /** The body as a state stream, decoded (throws if it is not a complete, intact one). */
  sessions(): SessionState[] {
    const decoder = new StateDecoder({ now: Date.now() });
    for (const chunk of this.chunks) decoder.push(chunk);
    return decoder.finish().sessions;
  }

  asServerResponse(): ServerResponse {
    return this as unknown as ServerResponse;
  }
}
