import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import type { TlsMaterial } from '../config.ts';

/** One HTTP exchange with the Engine API; the body is either collected or handed over as a stream. */
export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface RequestOptions {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  timeoutMs?: number;
}

export class TransportError extends Error {
  constructor(
    readonly endpoint: string,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Plain HTTP has no use for a TLS server name, but Node's http.Agent works one out for every
 * request unless given one, with net.isIP on the host: in a fresh process the first of those
 * calls costs ~5 ms of regular-expression warm-up. TLS endpoints keep their computed name (SNI).
 */
const NO_SNI = { servername: '' } as const;

/** Reaches one engine over a unix socket or TCP (+TLS), with keep-alive within one CPI call. */
export class Transport {
  private readonly agent: http.Agent;
  private readonly base: http.RequestOptions;
  private readonly secure: boolean;

  constructor(
    readonly endpoint: string,
    tls?: TlsMaterial,
  ) {
    if (endpoint.startsWith('unix://')) {
      this.secure = false;
      this.agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
      this.base = { socketPath: endpoint.slice('unix://'.length), ...NO_SNI };
    } else {
      const url = new URL(endpoint.replace(/^tcp:/, tls ? 'https:' : 'http:'));
      this.secure = url.protocol === 'https:' || tls !== undefined;
      this.agent = this.secure
        ? new https.Agent({ keepAlive: true, maxSockets: 8, ca: tls?.ca, cert: tls?.cert, key: tls?.key })
        : new http.Agent({ keepAlive: true, maxSockets: 8 });
      this.base = { host: url.hostname, port: Number(url.port), ...(this.secure ? {} : NO_SNI) };
    }
  }

  private send(
    opts: RequestOptions,
    onResponse: (res: http.IncomingMessage) => void,
    fail: (e: Error) => void,
  ) {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (Buffer.isBuffer(opts.body)) headers['content-length'] = String(opts.body.length);
    const req = (this.secure ? https : http).request(
      { ...this.base, agent: this.agent, method: opts.method, path: opts.path, headers },
      onResponse,
    );
    const timeout = opts.timeoutMs ?? 0;
    if (timeout > 0) {
      req.setTimeout(timeout, () =>
        req.destroy(new TransportError(this.endpoint, 'ETIMEDOUT', `no answer within ${timeout / 1000} s`)),
      );
    }
    req.on('error', (e) => fail(this.wrap(e)));
    if (opts.body === undefined) req.end();
    else if (Buffer.isBuffer(opts.body)) req.end(opts.body);
    else {
      opts.body.on('error', (e) => req.destroy(e));
      opts.body.pipe(req);
    }
  }

  request(opts: RequestOptions): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      this.send(
        opts,
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', (e) => reject(this.wrap(e)));
        },
        reject,
      );
    });
  }

  /** Like request, but hands each body chunk to `onData` as it arrives (progress, exec output). */
  stream(opts: RequestOptions, onData: (chunk: Buffer) => void): Promise<{ status: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
      this.send(
        opts,
        (res) => {
          const status = res.statusCode ?? 0;
          const errorChunks: Buffer[] = [];
          res.on('data', (c: Buffer) => (status >= 400 ? errorChunks.push(c) : onData(c)));
          res.on('end', () => resolve({ status, body: Buffer.concat(errorChunks) }));
          res.on('error', (e) => reject(this.wrap(e)));
        },
        reject,
      );
    });
  }

  /** Hands the response body over as a stream, with backpressure (image export into another engine). */
  open(opts: RequestOptions): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Readable }> {
    return new Promise((resolve, reject) => {
      this.send(
        opts,
        (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }),
        reject,
      );
    });
  }

  private wrap(e: Error): TransportError {
    if (e instanceof TransportError) return e;
    const code = (e as NodeJS.ErrnoException).code ?? 'EIO';
    const reason: Record<string, string> = {
      ECONNREFUSED: 'connection refused (is dockerd running?)',
      ENOENT: 'socket not found (is dockerd running?)',
      EACCES: 'permission denied on the socket (is the user in the docker group?)',
      ECONNRESET: 'connection reset',
      EPIPE: 'connection closed',
    };
    const tlsFailure = /SSL|TLS|CERT|certificate/i.test(`${code} ${e.message}`);
    const text = reason[code] ?? (tlsFailure ? `TLS failure: ${e.message}` : e.message);
    return new TransportError(this.endpoint, code, text);
  }

  close(): void {
    this.agent.destroy();
  }
}
