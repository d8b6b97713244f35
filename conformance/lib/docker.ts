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

export class DockerApi {
  readonly socketPath: string;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 4 });

  constructor(readonly host: string) {
    if (!host.startsWith('unix://'))
      throw new Error(`the suite inspects engines over unix sockets only, not ${host}`);
    this.socketPath = host.slice('unix://'.length);
  }

  request(
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = 30_000,
  ): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
      const req = http.request(
        {
          socketPath: this.socketPath,
          agent: this.agent,
          method,
          path: `/v1.41${path}`,
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
      req.setTimeout(timeoutMs, () =>
        req.destroy(new Error(`${method} ${path}: no answer within ${timeoutMs} ms`)),
      );
      req.on('error', reject);
      req.end(payload);
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
