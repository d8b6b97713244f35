/**
 * The HTTP/1.1 the Engine API needs, on a plain socket. Node's http client costs a Bun-compiled
 * CPI ~6 ms per process (ClientRequest, Agent, streams, diagnostics) against ~1 ms for the socket
 * alone (bench/README.md, "Start-up"), and a cheap call makes one or two requests.
 */

export type ResponseHeaders = Record<string, string>;

export interface ResponseHead {
  status: number;
  headers: ResponseHeaders;
}

export class HttpParseError extends Error {}

const MAX_HEAD_BYTES = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');

/** Parses status line and header fields (names lower-cased; repeated fields joined with ", "). */
export function parseHead(text: string): ResponseHead {
  const lines = text.split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})(?: |$)/.exec(lines[0] ?? '');
  if (!match)
    throw new HttpParseError(`not an HTTP/1.x response: ${JSON.stringify((lines[0] ?? '').slice(0, 60))}`);
  const headers: ResponseHeaders = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { status: Number(match[1]), headers };
}

type BodyMode =
  | { kind: 'none' }
  | { kind: 'length'; left: number }
  | { kind: 'chunked'; state: 'size' | 'data' | 'data-end' | 'trailer'; left: number }
  | { kind: 'close' };

export interface ResponseSink {
  head(head: ResponseHead): void;
  data(chunk: Buffer): void;
  /** The body is complete; `reusable`: the connection may carry another request. */
  end(reusable: boolean): void;
}

/**
 * Incremental parser of one response: bytes in through push(), head, body chunks (de-chunked)
 * and the end out through the sink. 1xx answers other than 101 are skipped.
 */
export class ResponseParser {
  private pending: Buffer = Buffer.alloc(0);
  private mode: BodyMode | undefined;
  private keepAlive = true;
  private done = false;

  constructor(
    private readonly method: string,
    private readonly sink: ResponseSink,
  ) {}

  get finished(): boolean {
    return this.done;
  }

  /** Bytes after a complete response: the first bytes of the stream of an upgraded (101) connection. */
  rest(): Buffer {
    const rest = this.pending;
    this.pending = Buffer.alloc(0);
    return rest;
  }

  push(chunk: Buffer): void {
    if (this.done) return;
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (!this.done && this.pending.length > 0) {
      if (!this.mode) {
        if (!this.readHead()) return;
        continue;
      }
      if (!this.readBody()) return;
    }
  }

  /** The connection closed: the end of a body read until close, else a truncated response. */
  close(): void {
    if (this.done) return;
    if (this.mode?.kind === 'close') {
      this.finish(false);
      return;
    }
    throw new HttpParseError(
      this.mode
        ? 'the connection closed in the middle of the response body'
        : 'the connection closed before a response',
    );
  }

  private readHead(): boolean {
    const end = this.pending.indexOf(HEAD_END);
    if (end < 0) {
      if (this.pending.length > MAX_HEAD_BYTES) throw new HttpParseError('response headers too large');
      return false;
    }
    const head = parseHead(this.pending.subarray(0, end).toString('latin1'));
    this.pending = this.pending.subarray(end + 4);
    if (head.status >= 100 && head.status < 200 && head.status !== 101) return true;
    const connection = (head.headers.connection ?? '').toLowerCase();
    this.keepAlive = !connection.includes('close');
    const length = head.headers['content-length'];
    const chunked = /(^|,)\s*chunked\s*$/i.test(head.headers['transfer-encoding'] ?? '');
    if (this.method === 'HEAD' || head.status === 204 || head.status === 304 || head.status === 101)
      this.mode = { kind: 'none' };
    else if (chunked) this.mode = { kind: 'chunked', state: 'size', left: 0 };
    else if (length !== undefined && /^\d+$/.test(length))
      this.mode = { kind: 'length', left: Number(length) };
    else this.mode = { kind: 'close' };
    this.sink.head(head);
    if (this.mode.kind === 'none' || (this.mode.kind === 'length' && this.mode.left === 0))
      this.finish(this.keepAlive && head.status !== 101);
    return true;
  }

  /** Consumes what it can of the body; false when it needs more bytes. */
  private readBody(): boolean {
    const mode = this.mode as BodyMode;
    if (mode.kind === 'close') {
      this.emit(this.pending.length);
      return false;
    }
    if (mode.kind === 'length') {
      const n = Math.min(mode.left, this.pending.length);
      mode.left -= n;
      this.emit(n);
      if (mode.left === 0) this.finish(this.keepAlive);
      return true;
    }
    if (mode.kind === 'none') return false;
    switch (mode.state) {
      case 'size': {
        const eol = this.pending.indexOf(CRLF);
        if (eol < 0) {
          if (this.pending.length > 1024) throw new HttpParseError('chunk size line too long');
          return false;
        }
        const size = Number.parseInt(
          this.pending.subarray(0, eol).toString('latin1').split(';')[0] ?? '',
          16,
        );
        if (!Number.isFinite(size) || size < 0) throw new HttpParseError('bad chunk size');
        this.pending = this.pending.subarray(eol + 2);
        mode.left = size;
        mode.state = size === 0 ? 'trailer' : 'data';
        return true;
      }
      case 'data': {
        const n = Math.min(mode.left, this.pending.length);
        mode.left -= n;
        this.emit(n);
        if (mode.left === 0) mode.state = 'data-end';
        return true;
      }
      case 'data-end': {
        if (this.pending.length < 2) return false;
        this.pending = this.pending.subarray(2);
        mode.state = 'size';
        return true;
      }
      case 'trailer': {
        const eol = this.pending.indexOf(CRLF);
        if (eol < 0) return false;
        this.pending = this.pending.subarray(eol + 2);
        if (eol === 0) this.finish(this.keepAlive);
        return true;
      }
    }
  }

  private emit(n: number): void {
    if (n === 0) return;
    const chunk = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(n);
    this.sink.data(chunk);
  }

  private finish(reusable: boolean): void {
    this.done = true;
    // Bytes after a complete response (none expected) make the connection unfit for reuse.
    this.sink.end(reusable && this.pending.length === 0);
  }
}

/** The request line and headers; `length` undefined: the body follows in chunks. */
export function requestHead(
  method: string,
  path: string,
  host: string,
  headers: Record<string, string>,
  length: number | undefined,
): string {
  let head = `${method} ${path} HTTP/1.1\r\nHost: ${host}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (/[\r\n]/.test(name) || /[\r\n]/.test(value)) throw new Error(`header ${name} holds a line break`);
    head += `${name}: ${value}\r\n`;
  }
  head += length === undefined ? 'Transfer-Encoding: chunked\r\n' : `Content-Length: ${length}\r\n`;
  return `${head}\r\n`;
}
