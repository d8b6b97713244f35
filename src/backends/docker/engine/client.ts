import type { Readable } from 'node:stream';
import type { TlsMaterial } from '../config.ts';
import { type RawResponse, Transport } from './transport.ts';

/** The oldest API we need (Docker 20.10) and the newest whose behaviour we know. */
export const MIN_API_VERSION = '1.41';
export const MAX_API_VERSION = '1.47';

export class DockerApiError extends Error {
  constructor(
    readonly status: number,
    readonly apiMessage: string,
    readonly what: string,
  ) {
    // A 5xx is the engine's own failure (often containerd's, relayed): the message says so.
    super(`${what}: ${status >= 500 ? 'the Docker engine failed: ' : ''}${apiMessage} (HTTP ${status})`);
  }
}

const versionNumber = (v: string) => {
  const [major = 0, minor = 0] = v.split('.').map(Number);
  return major * 1000 + minor;
};

export function negotiateVersion(server: string | undefined): string {
  if (!server || !/^\d+\.\d+$/.test(server)) return MIN_API_VERSION;
  if (versionNumber(server) < versionNumber(MIN_API_VERSION))
    throw new Error(`the engine speaks API ${server}, older than the ${MIN_API_VERSION} this CPI needs`);
  return versionNumber(server) > versionNumber(MAX_API_VERSION) ? MAX_API_VERSION : server;
}

type Query = Record<string, string | number | boolean | undefined>;

export interface CallOptions {
  query?: Query;
  body?: unknown;
  rawBody?: Buffer | Readable;
  contentType?: string;
  /** Statuses that are answers rather than errors (e.g. 404 for "exists?"). */
  accept?: number[];
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 120_000;

/** The engine refuses a request for its API version being below its minimum (HTTP 400). */
const VERSION_TOO_OLD = /client version [\d.]+ is too old/i;

/**
 * A typed client of the Engine API endpoints the CPI uses. Without a pinned version it speaks
 * MIN_API_VERSION right away, with no /_ping first (a round trip on every CPI call): every engine
 * from Docker 20.10 on accepts it. An engine that has dropped that version refuses the first
 * request; the version is then negotiated (/_ping) and that request sent again. Streamed bodies
 * cannot be sent twice, so they wait for a version the engine has accepted.
 */
export class DockerClient {
  readonly transport: Transport;
  /** A version the engine accepted (or the pinned one); undefined until then. */
  private confirmed: string | undefined;
  private negotiation: Promise<string> | undefined;

  constructor(
    readonly endpoint: string,
    tls?: TlsMaterial,
    pinnedVersion?: string,
  ) {
    this.transport = new Transport(endpoint, tls);
    this.confirmed = pinnedVersion;
  }

  /** Asks the engine (/_ping) for the version to speak, once per process. */
  negotiate(): Promise<string> {
    this.negotiation ??= this.transport
      .request({ method: 'GET', path: '/_ping', timeoutMs: 30_000 })
      .then((res) => {
        this.confirmed = negotiateVersion(String(res.headers['api-version'] ?? ''));
        return this.confirmed;
      });
    return this.negotiation;
  }

  /** The version for a request that can be sent again: a confirmed one, else the optimistic minimum. */
  private versionToTry(): string {
    return this.confirmed ?? MIN_API_VERSION;
  }

  /** The engine refused the optimistic version (none is confirmed yet): negotiate and send again. */
  private refusedTheVersion(res: { status: number; body: Buffer }): boolean {
    return (
      res.status === 400 && this.confirmed === undefined && VERSION_TOO_OLD.test(res.body.toString('utf8'))
    );
  }

  /** A confirmed version (negotiated when none is yet): for requests that cannot be repeated. */
  async apiVersion(): Promise<string> {
    return this.confirmed ?? this.negotiate();
  }

  private static versioned(version: string, path: string, query?: Query): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    return `/v${version}${path}${qs ? `?${qs}` : ''}`;
  }

  /** The versioned path of a request whose body is streamed (sent once, so with a confirmed version). */
  async path(path: string, query?: Query): Promise<string> {
    return DockerClient.versioned(await this.apiVersion(), path, query);
  }

  /**
   * Asks the engine to upgrade the connection of `path` (attach). The request has no body, so like
   * any repeatable request it goes out with the optimistic version and again after a negotiation.
   */
  async upgrade(path: string, query?: Query): ReturnType<Transport['upgrade']> {
    const tried = this.versionToTry();
    const res = await this.transport.upgrade(DockerClient.versioned(tried, path, query));
    if (res.status === 101) this.confirmed ??= tried;
    else if ('body' in res && this.refusedTheVersion(res))
      return this.transport.upgrade(DockerClient.versioned(await this.negotiate(), path, query));
    return res;
  }

  /** Sends one request; statuses >= 400 that are not accepted become DockerApiError naming `what`. */
  async call(method: string, path: string, what: string, opts: CallOptions = {}): Promise<RawResponse> {
    const headers: Record<string, string> = {};
    let body: Buffer | Readable | undefined = opts.rawBody;
    if (opts.body !== undefined) {
      body = Buffer.from(JSON.stringify(opts.body));
      headers['content-type'] = 'application/json';
    }
    if (opts.contentType) headers['content-type'] = opts.contentType;
    const repeatable = body === undefined || Buffer.isBuffer(body);
    const send = (version: string) =>
      this.transport.request({
        method,
        path: DockerClient.versioned(version, path, opts.query),
        headers,
        body,
        timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      });
    const tried = repeatable ? this.versionToTry() : await this.apiVersion();
    let res = await send(tried);
    if (this.refusedTheVersion(res)) res = await send(await this.negotiate());
    else this.confirmed ??= tried;
    if (res.status >= 400 && !(opts.accept ?? []).includes(res.status))
      throw apiError(res.status, res.body, what);
    return res;
  }

  async json<T>(method: string, path: string, what: string, opts: CallOptions = {}): Promise<T> {
    const res = await this.call(method, path, what, opts);
    return (res.body.length ? JSON.parse(res.body.toString('utf8')) : null) as T;
  }

  /** GET of an object's JSON; undefined when the engine has no such object (404). */
  async inspect<T>(path: string, what: string): Promise<T | undefined> {
    const res = await this.call('GET', path, what, { accept: [404] });
    return res.status === 404 ? undefined : (JSON.parse(res.body.toString('utf8')) as T);
  }

  close(): void {
    this.transport.close();
  }
}

export function apiError(status: number, body: Buffer, what: string): DockerApiError {
  let message = body.toString('utf8').trim();
  try {
    const parsed = JSON.parse(message) as { message?: string };
    if (parsed.message) message = parsed.message;
  } catch {
    // plain-text error bodies are kept as they are
  }
  return new DockerApiError(status, message || 'no message', what);
}
