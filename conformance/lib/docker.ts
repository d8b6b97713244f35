import { execFile } from 'node:child_process';
import http from 'node:http';

/**
 * Just enough of the Engine API to look at what a CPI left on an engine, plus `docker` CLI
 * calls for work inside VMs. Written here rather than borrowed from src/: the suite must not
 * share code with the CPI it judges.
 */
export interface ContainerInfo {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  State: string;
  Labels: Record<string, string> | null;
  Mounts?: Array<{ Source?: string; Destination?: string; Name?: string; Type?: string }>;
}
export interface VolumeInfo {
  Name: string;
  Labels: Record<string, string> | null;
  Mountpoint?: string;
}
export interface NetworkInfo {
  Id: string;
  Name: string;
  Labels: Record<string, string> | null;
  IPAM?: { Config?: Array<{ Subnet?: string }> | null };
}
export interface ImageInfo {
  Id: string;
  RepoTags: string[] | null;
  Labels: Record<string, string> | null;
}

/**
 * The Engine API over a unix socket with keep-alive: the suite's view of an engine, and the
 * benchmarks' "raw backend" (the bare requests, for comparison with the CPI).
 */
export class DockerApi {
  readonly socketPath: string;
  readonly version: string;
  private readonly agent: http.Agent;

  constructor(
    readonly host: string,
    opts: { maxSockets?: number; version?: string } = {},
  ) {
    if (!host.startsWith('unix://'))
      throw new Error(`the suite inspects engines over unix sockets only, not ${host}`);
    this.socketPath = host.slice('unix://'.length);
    this.agent = new http.Agent({ keepAlive: true, maxSockets: opts.maxSockets ?? 4 });
    this.version = opts.version ?? '1.41';
  }

  request(
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = 30_000,
  ): Promise<{ status: number; body: string }> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return this.send(method, path, payload && { data: payload, type: 'application/json' }, timeoutMs);
  }

  /** PUT /containers/{id}/archive with a ready-made tar. */
  putArchive(id: string, dir: string, tar: Buffer): Promise<{ status: number; body: string }> {
    const path = `/containers/${id}/archive?path=${encodeURIComponent(dir)}`;
    return this.send('PUT', path, { data: tar, type: 'application/x-tar' }, 30_000);
  }

  /** Like request, but a status >= 400 (other than those accepted) is an error. */
  async ok<T = unknown>(method: string, path: string, body?: unknown, accept: number[] = []): Promise<T> {
    const res = await this.request(method, path, body);
    if (res.status >= 400 && !accept.includes(res.status))
      throw new Error(`${method} ${path}: HTTP ${res.status} ${res.body.trim()}`);
    return (res.body ? JSON.parse(res.body) : null) as T;
  }

  /**
   * One request. A keep-alive connection the engine closed while idle fails on reuse (EPIPE,
   * ECONNRESET): such a request is sent once more on a new connection, as Node's docs advise.
   */
  private send(
    method: string,
    path: string,
    payload: { data: Buffer; type: string } | undefined,
    timeoutMs: number,
    retried = false,
  ): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          socketPath: this.socketPath,
          agent: this.agent,
          method,
          path: `/v${this.version}${path}`,
          headers: payload
            ? { 'content-type': payload.type, 'content-length': String(payload.data.length) }
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
      req.setTimeout(timeoutMs, () =>
        req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)),
      );
      req.on('error', (e: NodeJS.ErrnoException) => {
        const stale = req.reusedSocket && (e.code === 'ECONNRESET' || e.code === 'EPIPE');
        if (stale && !retried) this.send(method, path, payload, timeoutMs, true).then(resolve, reject);
        else reject(e);
      });
      req.end(payload?.data);
    });
  }

  async get<T>(path: string): Promise<T> {
    const res = await this.request('GET', path);
    if (res.status >= 400) throw new Error(`GET ${path}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
    return JSON.parse(res.body) as T;
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.request('GET', '/_ping', undefined, 3000)).status === 200;
    } catch {
      return false;
    }
  }

  containers(): Promise<ContainerInfo[]> {
    return this.get('/containers/json?all=1');
  }
  async volumes(): Promise<VolumeInfo[]> {
    return (await this.get<{ Volumes: VolumeInfo[] | null }>('/volumes')).Volumes ?? [];
  }
  networks(): Promise<NetworkInfo[]> {
    return this.get('/networks');
  }
  images(): Promise<ImageInfo[]> {
    return this.get('/images/json?all=1');
  }

  async inspectContainer(id: string): Promise<Record<string, unknown> | undefined> {
    const res = await this.request('GET', `/containers/${encodeURIComponent(id)}/json`);
    if (res.status === 404) return undefined;
    if (res.status >= 400) throw new Error(`inspect ${id}: HTTP ${res.status} ${res.body.slice(0, 300)}`);
    return JSON.parse(res.body) as Record<string, unknown>;
  }

  /** Container of a VM CID: by the CPI's label, else by name. */
  async vmContainer(vmCid: string): Promise<ContainerInfo | undefined> {
    const all = await this.containers();
    return (
      all.find((c) => c.Labels?.['io.bosh.cpi.vm'] === vmCid) ??
      all.find((c) => c.Names.some((n) => n === `/${vmCid}`))
    );
  }

  close(): void {
    this.agent.destroy();
  }
}

export interface ExecOutput {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the docker CLI against `host`. */
export function dockerCli(
  host: string,
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<ExecOutput> {
  return new Promise((resolve) => {
    const child = execFile(
      'docker',
      ['-H', host, ...args],
      { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({
          code,
          stdout,
          stderr: `${stderr}${error && typeof error.code !== 'number' ? error.message : ''}`,
        });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs `sh -c script` inside a container. */
export function execIn(
  host: string,
  container: string,
  script: string,
  timeoutMs = 60_000,
): Promise<ExecOutput> {
  return dockerCli(host, ['exec', container, 'sh', '-c', script], { timeoutMs });
}
