import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Readable } from 'node:stream';
import tls from 'node:tls';
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
  /** Connections taken over by upgrade(), closed with the transport. */
  private readonly upgraded = new Set<net.Socket>();

  constructor(
    readonly endpoint: string,
    private readonly tlsMaterial?: TlsMaterial,
  ) {
    const tls = tlsMaterial;
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

  /**
   * Sends `POST path` asking to upgrade the connection (the engine's attach endpoint) and hands
   * over the raw connection once the engine answers 101, with any bytes that came after its
   * headers. Written by hand on a plain socket: the HTTP clients' upgrade handling differs
   * between runtimes. Any other answer is a status and body for the caller to report.
   */
  upgrade(
    path: string,
    timeoutMs = 30_000,
  ): Promise<{ status: 101; socket: net.Socket; head: Buffer } | { status: number; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const base = this.base as { socketPath?: string; host?: string; port?: number };
      const socket = base.socketPath
        ? net.connect(base.socketPath)
        : this.secure
          ? tls.connect({
              host: base.host,
              port: base.port,
              ca: this.tlsMaterial?.ca,
              cert: this.tlsMaterial?.cert,
              key: this.tlsMaterial?.key,
              ...(base.host && net.isIP(base.host) === 0 ? { servername: base.host } : {}),
            })
          : net.connect({ host: base.host as string, port: base.port as number });
      const ready = this.secure && !base.socketPath ? 'secureConnect' : 'connect';
      let received = Buffer.alloc(0);
      const fail = (e: Error) => {
        socket.destroy();
        reject(this.wrap(e));
      };
      socket.setTimeout(timeoutMs, () =>
        fail(new TransportError(this.endpoint, 'ETIMEDOUT', `no answer within ${timeoutMs / 1000} s`)),
      );
      socket.once('error', fail);
      socket.once(ready, () => {
        socket.write(
          `POST ${path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n`,
        );
      });
      const onData = (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        const end = received.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = received.subarray(0, end).toString('latin1');
        const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
        const rest = received.subarray(end + 4);
        if (status === 101) {
          socket.off('data', onData);
          socket.off('error', fail);
          socket.setTimeout(0);
          this.upgraded.add(socket);
          socket.once('close', () => this.upgraded.delete(socket));
          resolve({ status: 101, socket, head: rest });
          return;
        }
        // An error answer: its body (JSON message) is complete when the engine closes or at its length.
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? Number.NaN);
        if (Number.isFinite(length) && rest.length < length) return;
        socket.off('data', onData);
        socket.destroy();
        resolve({ status, body: Number.isFinite(length) ? rest.subarray(0, length) : rest });
      };
      socket.on('data', onData);
      socket.once('end', () => {
        if (!socket.destroyed) fail(new TransportError(this.endpoint, 'EPIPE', 'connection closed'));
      });
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
    for (const socket of this.upgraded) socket.destroy();
  }
}
