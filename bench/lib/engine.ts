import http from 'node:http';

/**
 * The "raw backend" side of the comparisons: the bare Engine API requests, sent from this
 * (already running) process over the local socket with keep-alive. No process start-up, no
 * validation, no lookups: the least work Docker itself needs for the same result.
 */
export class RawEngine {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  constructor(
    readonly socketPath = '/var/run/docker.sock',
    readonly version = '1.41',
  ) {}

  /**
   * One request. A keep-alive connection the engine closed while idle fails on reuse (EPIPE,
   * ECONNRESET): such a request is sent once more on a new connection, as Node's docs advise.
   */
  request(
    method: string,
    path: string,
    body?: unknown,
    retried = false,
  ): Promise<{ status: number; body: string }> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          agent: this.agent,
          method,
          path: `/v${this.version}${path}`,
          headers: payload
            ? { 'content-type': 'application/json', 'content-length': String(payload.length) }
            : {},
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', (e: NodeJS.ErrnoException) => {
        const stale = req.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE');
        if (stale && !retried) this.request(method, path, body, true).then(resolve, reject);
        else reject(e);
      });
      req.end(payload);
    });
  }

  /** Like request, but a status >= 400 (other than those accepted) is an error. */
  async ok<T = unknown>(method: string, path: string, body?: unknown, accept: number[] = []): Promise<T> {
    const res = await this.request(method, path, body);
    if (res.status >= 400 && !accept.includes(res.status))
      throw new Error(`${method} ${path}: HTTP ${res.status} ${res.body.trim()}`);
    return (res.body ? JSON.parse(res.body) : null) as T;
  }

  /** PUT /containers/{id}/archive with a ready-made tar. */
  putArchive(id: string, dir: string, tar: Buffer): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          agent: this.agent,
          method: 'PUT',
          path: `/v${this.version}/containers/${id}/archive?path=${encodeURIComponent(dir)}`,
          headers: { 'content-type': 'application/x-tar', 'content-length': String(tar.length) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
          );
        },
      );
      req.on('error', reject);
      req.end(tar);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/** Times an async step in ms. */
export async function timed<T>(step: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = performance.now();
  const value = await step();
  return { ms: performance.now() - started, value };
}
