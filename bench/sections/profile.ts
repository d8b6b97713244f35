import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DockerClient } from '../../src/backends/docker/engine/client.ts';
import { Containers } from '../../src/backends/docker/engine/containers.ts';
import { execInContainer } from '../../src/backends/docker/engine/exec.ts';
import { HELPER_CONTAINER, HostHelper } from '../../src/backends/docker/helper.ts';
import { Logger } from '../../src/log/logger.ts';
import { Redactor } from '../../src/log/redact.ts';
import { requestCid } from '../../src/util/cloud-ids.ts';
import type { Bench } from '../lib/context.ts';
import { must } from '../lib/cpi.ts';
import { type Summary, summarize } from '../lib/stats.ts';

interface TracedRequest {
  method: string;
  path: string;
  status?: number;
  start: number;
  headers?: number;
  end?: number;
}

interface Trace {
  tag: string;
  bootstrap: number;
  preload: number;
  stdinEnd?: number;
  exit: number;
  requests: TracedRequest[];
}

export interface ProfileRow {
  method: string;
  /** Wall time seen by the caller (includes the tracing preload's few ms). */
  wall: number;
  /** ms since process start: node bootstrapped, first engine request sent, last answered, exit. */
  bootstrap: number;
  firstRequest: number | undefined;
  lastResponse: number | undefined;
  exit: number;
  roundTrips: number;
  hostOps: number;
  /** Time with at least one engine request outstanding. */
  engineBusy: number;
  requests: string[];
}

export interface BlockRow {
  what: string;
  ms: Summary;
}

function busy(requests: TracedRequest[]): number {
  const spans = requests
    .filter((r) => r.end !== undefined)
    .map((r) => [r.start, r.end as number] as const)
    .sort((a, b) => a[0] - b[0]);
  let total = 0;
  let cursor = -1;
  for (const [s, e] of spans) {
    const from = Math.max(s, cursor);
    if (e > from) total += e - from;
    cursor = Math.max(cursor, e);
  }
  return Math.round(total * 10) / 10;
}

/** Each method once with every engine request timed (bench/trace-requests.cjs), plus the cost of the building blocks. */
export async function profile(
  bench: Bench,
  stemcellCid: string,
  smallImagePath: string,
): Promise<{ rows: ProfileRow[]; blocks: BlockRow[] }> {
  const rows: ProfileRow[] = [];
  let n = 0;
  const traced = <T>(method: string, args: unknown[]): T => {
    const file = join(bench.tmp, `trace-${n++}.jsonl`);
    bench.cpi.traceFile = file;
    try {
      const r = must(method, bench.cpi.callSync<T>(method, args));
      const t = JSON.parse(readFileSync(file, 'utf8').trim().split('\n').pop() as string) as Trace;
      const first = t.requests[0];
      const last = t.requests.reduce((m, q) => Math.max(m, q.end ?? 0), 0);
      rows.push({
        method,
        wall: Math.round(r.ms * 10) / 10,
        bootstrap: t.bootstrap,
        firstRequest: first?.start,
        lastResponse: t.requests.length ? last : undefined,
        exit: t.exit,
        roundTrips: t.requests.length,
        hostOps: t.requests.filter(
          (q) => q.method === 'POST' && q.path.startsWith(`/containers/${HELPER_CONTAINER}/exec`),
        ).length,
        engineBusy: busy(t.requests),
        requests: t.requests.map(
          (q) =>
            `${q.start.toFixed(1)}+${((q.end ?? q.start) - q.start).toFixed(1)} ${q.method} ${q.path.replace(/\?.*/, '')} ${q.status ?? '-'}`,
        ),
      });
      return r.result;
    } finally {
      bench.cpi.traceFile = undefined;
    }
  };
  traced('info', []);
  const stemcell = traced<string>('create_stemcell', [
    smallImagePath,
    { name: 'p', version: '1' },
    { tags: {} },
  ]);
  const [vmCid] = traced<[string]>('create_vm', bench.vmArgs(stemcellCid, 'agent-profile'));
  bench.vmCids.add(vmCid);
  traced('has_vm', [vmCid]);
  traced('set_vm_metadata', [vmCid, { deployment: 'p', instance_group: 'web', index: '0' }]);
  traced('reboot_vm', [vmCid]);
  const disk = traced<string>('create_disk', [1024, {}, vmCid]);
  traced('attach_disk', [vmCid, disk]);
  traced('get_disks', [vmCid]);
  traced('has_disk', [disk]);
  traced('set_disk_metadata', [disk, { deployment: 'p' }]);
  const snap = traced<string>('snapshot_disk', [disk, {}]);
  traced('delete_snapshot', [snap]);
  traced('detach_disk', [vmCid, disk]);
  traced('resize_disk', [disk, 1040]);
  traced('delete_disk', [disk]);
  traced('delete_vm', [vmCid]);
  traced('delete_stemcell', [stemcell]);

  // Building blocks, timed in this process (no process start-up): what one of each costs.
  const blocks: BlockRow[] = [];
  const reps = bench.opts.quick ? 5 : 15;
  const logger = new Logger('bench', new Redactor(), () => {});
  const sample = async (what: string, step: (client: DockerClient) => Promise<unknown>, fresh = false) => {
    const ms: number[] = [];
    let client = new DockerClient('unix:///var/run/docker.sock');
    await client.apiVersion();
    for (let i = 0; i < reps; i++) {
      if (fresh) {
        client.close();
        client = new DockerClient('unix:///var/run/docker.sock');
      }
      const started = performance.now();
      await step(client);
      ms.push(performance.now() - started);
    }
    client.close();
    blocks.push({ what, ms: summarize(ms) });
  };
  const vm2 = bench.createVmSync(stemcellCid, 'agent-blocks').vmCid;
  const [c] = await new Containers(new DockerClient('unix:///var/run/docker.sock')).list([
    `io.bosh.cpi.vm=${vm2}`,
  ]);
  const id = c?.Id as string;
  await sample('_ping on a new connection (version negotiation)', (d) => d.apiVersion(), true);
  await sample('GET /containers/json?filters=label (findVm)', (d) =>
    new Containers(d).list([`io.bosh.cpi.vm=${vm2}`]),
  );
  await sample('GET /containers/{id}/json', (d) => new Containers(d).inspect(id));
  await sample('GET /containers/{id}/archive (read settings)', (d) =>
    new Containers(d).readFile(id, '/var/vcap/bosh/warden-cpi-agent-env.json'),
  );
  await sample('PUT /containers/{id}/archive (3 small files)', (d) =>
    new Containers(d).putFiles(id, '/var/vcap/bosh', [
      { name: 'bench-x.json', type: 'file', mode: 0o600, content: Buffer.from('{}') },
    ]),
  );
  await sample('exec `true` in the helper (create+start+inspect)', (d) =>
    execInContainer(d, HELPER_CONTAINER, ['/bin/true'], 'bench'),
  );
  await sample('host op list-disks (exec + find dockerd + nsenter + script)', (d) =>
    new HostHelper(d, bench.dataDir, 'bosh-cpi-helper:1', logger).run('list-disks', [
      requestCid('vm')(vm2, 'vm_cid'),
    ]),
  );
  await sample('host op setup (mkdir, flock, mountpoint, mount --make-rshared)', (d) =>
    new HostHelper(d, bench.dataDir, 'bosh-cpi-helper:1', logger).run('setup', []),
  );
  must('delete_vm', bench.cpi.callSync('delete_vm', [vm2]));
  return { rows, blocks };
}
