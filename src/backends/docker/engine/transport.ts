import type * as NodeNet from 'node:net';
import type { Readable } from 'node:stream';
import type * as NodeTls from 'node:tls';
import { type ByteSocket, connectUnix } from '../../../util/unix-socket.ts';
import type { TlsMaterial } from '../config.ts';
import { type ResponseHead, type ResponseHeaders, ResponseParser, requestHead } from './http1.ts';

/** One HTTP exchange with the Engine API; the body is either collected or handed over as a stream. */
export interface RawResponse {
  status: number;
  headers: ResponseHeaders;
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

/** Socket handlers feeding `parser`; a malformed or truncated response goes to `fail`. */
function parserFeed(parser: ResponseParser, fail: (e: Error) => void) {
  const guarded = (step: () => void) => {
    try {
      step();
    } catch (e) {
      fail(e as Error);
    }
  };
  return {
    data: (chunk: Buffer) => guarded(() => parser.push(chunk)),
    close: () => guarded(() => parser.close()),
  };
}

/** Connections one transport opens at most at once; further requests wait for one. */
const MAX_SOCKETS = 8;

/** A kept-alive connection that the engine closed before answering: the request is sent again. */
class StaleConnection extends Error {}

interface Flow {
  pause(): void;
  resume(): void;
}

interface Handlers {
  head(head: ResponseHead, flow: Flow): void;
  data(chunk: Buffer): void;
}

/**
 * Reaches one engine over a unix socket or TCP (+TLS), with keep-alive within one CPI call.
 * HTTP/1.1 is spoken on the socket directly (see http1.ts).
 */
export class Transport {
  private readonly unixPath: string | undefined;
  private readonly host: string;
  private readonly port: number;
  private readonly secure: boolean;
  private readonly hostHeader: string;
  private readonly idle: ByteSocket[] = [];
  private readonly sockets = new Set<ByteSocket>();
  private readonly waiting: Array<() => void> = [];
  private active = 0;

  constructor(
    readonly endpoint: string,
    private readonly tlsMaterial?: TlsMaterial,
  ) {
    if (endpoint.startsWith('unix://')) {
      this.unixPath = endpoint.slice('unix://'.length);
      this.secure = false;
      this.host = '';
      this.port = 0;
      this.hostHeader = 'docker';
    } else {
      const url = new URL(endpoint.replace(/^tcp:/, tlsMaterial ? 'https:' : 'http:'));
      this.secure = url.protocol === 'https:' || tlsMaterial !== undefined;
      this.host = url.hostname.replace(/^\[(.*)\]$/, '$1');
      this.port = Number(url.port || (this.secure ? 443 : 80));
      this.hostHeader = url.host;
    }
  }

  /** A new connection, once it is established (TLS: once the handshake verified the engine). */
  private async connect(timeoutMs: number): Promise<ByteSocket> {
    const limit = timeoutMs || 30_000;
    const timedOut = () =>
      new TransportError(this.endpoint, 'ETIMEDOUT', `could not connect within ${limit / 1000} s`);
    const socket =
      this.unixPath !== undefined
        ? await this.connectUnix(limit, timedOut)
        : await this.connectTcp(limit, timedOut);
    this.sockets.add(socket);
    socket.on('close', () => {
      this.sockets.delete(socket);
      const at = this.idle.indexOf(socket);
      if (at >= 0) this.idle.splice(at, 1);
    });
    // Errors of an idle connection only end it; those of a request are handled by its exchange.
    socket.on('error', () => {});
    return socket;
  }

  private async connectUnix(limit: number, timedOut: () => TransportError): Promise<ByteSocket> {
    const connecting = connectUnix(this.unixPath as string);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(timedOut()), limit);
    });
    try {
      return await Promise.race([connecting, timeout]);
    } catch (e) {
      // A connection that came up after the deadline is closed, not leaked.
      connecting.then(
        (late) => late.destroy(),
        () => {},
      );
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  private async connectTcp(limit: number, timedOut: () => TransportError): Promise<ByteSocket> {
    const net: typeof NodeNet = process.getBuiltinModule('node:net');
    let socket: NodeNet.Socket;
    let ready: string;
    if (this.secure) {
      const tls: typeof NodeTls = process.getBuiltinModule('node:tls');
      socket = tls.connect({
        host: this.host,
        port: this.port,
        ca: this.tlsMaterial?.ca,
        cert: this.tlsMaterial?.cert,
        key: this.tlsMaterial?.key,
        ...(net.isIP(this.host) === 0 ? { servername: this.host } : {}),
      });
      ready = 'secureConnect';
    } else {
      socket = net.connect({ host: this.host, port: this.port });
      ready = 'connect';
    }
    await new Promise<void>((resolve, reject) => {
      const fail = (e: Error) => {
        socket.destroy();
        reject(e);
      };
      socket.setTimeout(limit, () => fail(timedOut()));
      socket.once('error', fail);
      socket.once(ready, () => {
        socket.off('error', fail);
        socket.setTimeout(0);
        resolve();
      });
    });
    socket.setNoDelay(true);
    return socket;
  }

  private async acquire(timeoutMs: number): Promise<{ socket: ByteSocket; reused: boolean }> {
    while (this.active >= MAX_SOCKETS) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    const idle = this.idle.pop();
    if (idle) {
      idle.ref();
      return { socket: idle, reused: true };
    }
    try {
      return { socket: await this.connect(timeoutMs), reused: false };
    } catch (e) {
      this.release(undefined, false);
      throw e;
    }
  }

  private release(socket: ByteSocket | undefined, reusable: boolean): void {
    this.active--;
    if (socket) {
      if (reusable && !socket.destroyed) {
        socket.setTimeout(0);
        socket.unref();
        this.idle.push(socket);
      } else socket.destroy();
    }
    this.waiting.shift()?.();
  }

  /** Sends one request and feeds its response to `handlers`; resolves once the response is complete. */
  private async send(opts: RequestOptions, handlers: Handlers): Promise<void> {
    const repeatable = opts.body === undefined || Buffer.isBuffer(opts.body);
    for (let attempt = 1; ; attempt++) {
      const { socket, reused } = await this.acquire(opts.timeoutMs ?? 0).catch((e: Error) => {
        throw this.wrap(e);
      });
      try {
        await this.exchange(socket, reused, opts, handlers);
        return;
      } catch (e) {
        if (e instanceof StaleConnection && repeatable && attempt === 1) continue;
        throw this.wrap(
          e instanceof StaleConnection
            ? new TransportError(this.endpoint, 'ECONNRESET', 'connection reset')
            : (e as Error),
        );
      }
    }
  }

  private exchange(
    socket: ByteSocket,
    reused: boolean,
    opts: RequestOptions,
    handlers: Handlers,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      let answered = false;
      let bodySent = false;
      let settled = false;
      const stream = opts.body !== undefined && !Buffer.isBuffer(opts.body) ? opts.body : undefined;
      const detach = () => {
        socket.off('data', onData);
        socket.off('end', onClose);
        socket.off('close', onClose);
        socket.off('error', onError);
        socket.off('drain', onDrain);
        if (stream) {
          stream.off('data', onBodyData);
          stream.off('end', onBodyEnd);
          stream.off('error', onBodyError);
        }
      };
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        detach();
        this.release(socket, false);
        if (stream && !bodySent) stream.destroy();
        reject(!answered && reused && !(e instanceof TransportError) ? new StaleConnection(e.message) : e);
      };
      const parser = new ResponseParser(opts.method, {
        head: (head) => {
          answered = true;
          handlers.head(head, { pause: () => socket.pause(), resume: () => socket.resume() });
        },
        data: (chunk) => handlers.data(chunk),
        end: (reusable) => {
          if (settled) return;
          settled = true;
          detach();
          if (stream && !bodySent) stream.destroy();
          this.release(socket, reusable && bodySent);
          resolve();
        },
      });
      const feed = parserFeed(parser, fail);
      const onData = (chunk: Buffer) => {
        answered = true;
        feed.data(chunk);
      };
      const onClose = feed.close;
      const onError = (e: Error) => fail(e);
      const onDrain = () => stream?.resume();
      const onBodyData = (chunk: Buffer) => {
        if (chunk.length === 0) return;
        const ok = socket.write(
          Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n')]),
        );
        if (!ok) stream?.pause();
      };
      const onBodyEnd = () => {
        bodySent = true;
        socket.write('0\r\n\r\n');
      };
      const onBodyError = (e: Error) => fail(e);
      socket.on('data', onData);
      socket.on('end', onClose);
      socket.on('close', onClose);
      socket.on('error', onError);
      const timeout = opts.timeoutMs ?? 0;
      if (timeout > 0)
        socket.setTimeout(timeout, () =>
          fail(new TransportError(this.endpoint, 'ETIMEDOUT', `no answer within ${timeout / 1000} s`)),
        );
      let head: string;
      try {
        const length = stream ? undefined : ((opts.body as Buffer | undefined)?.length ?? 0);
        head = requestHead(opts.method, opts.path, this.hostHeader, opts.headers ?? {}, length);
      } catch (e) {
        fail(e as Error);
        return;
      }
      if (!stream) {
        bodySent = true;
        socket.write(opts.body ? Buffer.concat([Buffer.from(head, 'latin1'), opts.body as Buffer]) : head);
        return;
      }
      socket.write(head);
      socket.on('drain', onDrain);
      stream.on('data', onBodyData);
      stream.on('end', onBodyEnd);
      stream.on('error', onBodyError);
    });
  }

  request(opts: RequestOptions): Promise<RawResponse> {
    let head: ResponseHead = { status: 0, headers: {} };
    const chunks: Buffer[] = [];
    return this.send(opts, { head: (h) => (head = h), data: (c) => chunks.push(c) }).then(() => ({
      status: head.status,
      headers: head.headers,
      body: Buffer.concat(chunks),
    }));
  }

  /** Like request, but hands each body chunk to `onData` as it arrives (progress, exec output). */
  async stream(
    opts: RequestOptions,
    onData: (chunk: Buffer) => void,
  ): Promise<{ status: number; body: Buffer }> {
    let status = 0;
    const errorChunks: Buffer[] = [];
    await this.send(opts, {
      head: (h) => (status = h.status),
      data: (c) => (status >= 400 ? errorChunks.push(c) : onData(c)),
    });
    return { status, body: Buffer.concat(errorChunks) };
  }

  /** Hands the response body over as a stream, with backpressure (image export into another engine). */
  async open(opts: RequestOptions): Promise<{ status: number; headers: ResponseHeaders; body: Readable }> {
    const { Readable } = await import('node:stream');
    return new Promise((resolve, reject) => {
      let flow: Flow | undefined;
      const body = new Readable({ read: () => flow?.resume() });
      let opened = false;
      this.send(opts, {
        head: (head, f) => {
          flow = f;
          opened = true;
          resolve({ status: head.status, headers: head.headers, body });
        },
        data: (chunk) => {
          if (!body.push(chunk)) flow?.pause();
        },
      }).then(
        () => body.push(null),
        (e: Error) => (opened ? body.destroy(e) : reject(e)),
      );
    });
  }

  /**
   * Sends `POST path` asking to upgrade the connection (the engine's attach endpoint) and hands
   * over the raw connection once the engine answers 101, with any bytes that came after its
   * headers. Written by hand on a plain socket: the HTTP clients' upgrade handling differs
   * between runtimes. Any other answer is a status and body for the caller to report.
   */
  async upgrade(
    path: string,
    timeoutMs = 30_000,
  ): Promise<{ status: 101; socket: ByteSocket; head: Buffer } | { status: number; body: Buffer }> {
    const socket = await this.connect(timeoutMs).catch((e: Error) => {
      throw this.wrap(e);
    });
    return new Promise((resolve, reject) => {
      let status = 0;
      const chunks: Buffer[] = [];
      const detach = () => {
        socket.off('data', onData);
        socket.off('end', onClose);
        socket.off('close', onClose);
        socket.off('error', failWrapped);
        socket.setTimeout(0);
      };
      const failWrapped = (e: Error) => {
        detach();
        socket.destroy();
        reject(this.wrap(e));
      };
      const parser = new ResponseParser('POST', {
        head: (head) => (status = head.status),
        data: (chunk) => chunks.push(chunk),
        end: () => {
          detach();
          if (status === 101) {
            resolve({ status: 101, socket, head: parser.rest() });
            return;
          }
          socket.destroy();
          resolve({ status, body: Buffer.concat(chunks) });
        },
      });
      const { data: onData, close: onClose } = parserFeed(parser, failWrapped);
      socket.setTimeout(timeoutMs, () =>
        failWrapped(new TransportError(this.endpoint, 'ETIMEDOUT', `no answer within ${timeoutMs / 1000} s`)),
      );
      socket.on('data', onData);
      socket.on('end', onClose);
      socket.on('close', onClose);
      socket.on('error', failWrapped);
      socket.write(
        `POST ${path} HTTP/1.1\r\nHost: ${this.hostHeader}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 0\r\n\r\n`,
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
    for (const socket of this.sockets) socket.destroy();
  }
}
