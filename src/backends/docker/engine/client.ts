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
    super(`${what}: ${apiMessage} (HTTP ${status})`);
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

/** A typed client of the Engine API endpoints the CPI uses, versioned by negotiation. */
export class DockerClient {
  readonly transport: Transport;
  private version: Promise<string> | undefined;

  constructor(
    readonly endpoint: string,
    tls?: TlsMaterial,
    private readonly pinnedVersion?: string,
  ) {
    this.transport = new Transport(endpoint, tls);
  }

  apiVersion(): Promise<string> {
    if (this.pinnedVersion) return Promise.resolve(this.pinnedVersion);
    this.version ??= this.transport
      .request({ method: 'GET', path: '/_ping', timeoutMs: 30_000 })
      .then((res) => negotiateVersion(String(res.headers['api-version'] ?? '')));
    return this.version;
  }

  async path(path: string, query?: Query): Promise<string> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) params.set(k, String(v));
    const qs = params.toString();
    return `/v${await this.apiVersion()}${path}${qs ? `?${qs}` : ''}`;
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
    const res = await this.transport.request({
      method,
      path: await this.path(path, opts.query),
      headers,
      body,
      timeoutMs: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    });
    if (res.status >= 400 && !(opts.accept ?? []).includes(res.status))
      throw apiError(res.status, res.body, what);
    return res;
  }

  async json<T>(method: string, path: string, what: string, opts: CallOptions = {}): Promise<T> {
    const res = await this.call(method, path, what, opts);
    return (res.body.length ? JSON.parse(res.body.toString('utf8')) : null) as T;
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
