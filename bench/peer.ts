/**
 * This CPI against another CPI (a peer, e.g. the Go docker CPI) on the same Docker engine: every
 * method of both, interleaved call by call (the order alternates each repetition), so load from
 * other users of the machine falls on both alike. Prints the median per method and the ratio.
 *
 *   npm run bench -- --peer "<command>" --peer-config <file> [--docker-host unix:///path/docker.sock]
 *                    [--api-version 1.41] [--reps 10] [--methods info,has_vm,...,attach_disk,get_disks,detach_disk]
 *                    [--ours <another build's executable or bin/cpi>]
 *                    [--stemcell <stemcell tgz>] [--network dynamic|manual]
 *
 * The peer is run as `<command words…> <peer-config>` (no shell) with CPI_CONFIG=<peer-config> in its
 * environment, one request on stdin, as BOSH runs a CPI; e.g. `--peer "/path/cpi -configPath"`.
 * This CPI is run the same way: its compiled executable (dist/cpi, what the release packages)
 * with the config path, not through bin/cpi. In a deployment each is started by its release's job
 * wrapper (ours /bin/sh, the Go CPI's bash), one more program per call for both; leaving both out
 * compares the CPIs themselves (the wrapper costs ~3 ms here).
 * This CPI runs on --docker-host, by default the first unix:// URL found in the peer's config (so
 * both use the same engine), with a config of its own (a fresh data_dir, the pinned API version
 * if --api-version is given). Both create VMs from the same small stemcell image, on one
 * pre-made bridge network of that engine (manual network, cloud_properties.name): the `image` of
 * --stemcell (a real stemcell tarball; the Go CPI starts its containers with bash), else the
 * project's small test stemcell. A method the
 * peer does not implement shows "n/a". It measures; it never fails on a time.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildStemcell } from '../test/support/stemcell.ts';
import { Bench, comparisonOptions } from './lib/context.ts';
import { COMPILED_CPI, type CpiResult, CpiRunner } from './lib/cpi.ts';
import { fmt, ratio, summarize, table } from './lib/stats.ts';

const log = (line: string) => process.stderr.write(`${line}\n`);

/** `--name value` or `--name=value`. */
function option(argv: string[], name: string): string | undefined {
  const at = argv.indexOf(`--${name}`);
  if (at >= 0) return argv[at + 1];
  return argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

/** The first unix:// URL anywhere in a JSON config (the peer's engine). */
function unixUrlIn(value: unknown): string | undefined {
  if (typeof value === 'string') return value.startsWith('unix://') ? value : undefined;
  if (value && typeof value === 'object')
    for (const v of Object.values(value)) {
      const found = unixUrlIn(v);
      if (found) return found;
    }
  return undefined;
}

/** Targets of issue 13, as ratios to the peer (this CPI ÷ peer). */
const TARGETS: Record<string, number> = {
  info: 2.5,
  has_vm: 2,
  has_disk: 2,
  set_vm_metadata: 2,
  set_disk_metadata: 2,
  create_vm: 0.8,
  delete_vm: 0.8,
  attach_disk: 0.4,
  detach_disk: 0.4,
};

export const DEFAULT_METHODS = [
  'info',
  'create_vm',
  'has_vm',
  'set_vm_metadata',
  'create_disk',
  'has_disk',
  'set_disk_metadata',
  'delete_disk',
  'delete_vm',
] as const;

export async function peerMain(argv: string[]): Promise<void> {
  const command = option(argv, 'peer');
  const peerConfig = option(argv, 'peer-config');
  if (!command || !peerConfig)
    throw new Error('--peer "<command>" and --peer-config <file> are both required');
  const dockerHost =
    option(argv, 'docker-host') ?? unixUrlIn(JSON.parse(readFileSync(peerConfig, 'utf8'))) ?? undefined;
  const reps = Number(option(argv, 'reps') ?? 10);
  const methods = option(argv, 'methods')?.split(',') ?? [...DEFAULT_METHODS];
  const apiVersion = option(argv, 'api-version');
  const bench = new Bench(
    comparisonOptions(reps, { ...(dockerHost ? { dockerHost } : {}), ...(apiVersion ? { apiVersion } : {}) }),
  );
  const [peerBin, ...peerArgs] = command.split(/\s+/).filter(Boolean) as [string, ...string[]];
  const runners = {
    ours: new CpiRunner(bench.configPath, bench.directorUuid, option(argv, 'ours') ?? COMPILED_CPI),
    peer: new CpiRunner(peerConfig, bench.directorUuid, peerBin),
  };
  runners.peer.argv = [...peerArgs, peerConfig];
  runners.peer.extraEnv = { CPI_CONFIG: peerConfig };
  // What bin/cpi and the release's wrapper do before starting the executable.
  runners.ours.extraEnv = { NODE_EXTRA_CA_CERTS: undefined };
  const samples: Record<string, { ours: number[]; peer: number[] }> = {};
  /** Methods the peer does not implement or fails on this engine: method → its first error. */
  const unsupported = new Map<string, string>();
  const peerVms = new Set<string>();
  const peerDisks = new Set<string>();
  const stemcells: Partial<Record<'ours' | 'peer', string>> = {};
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      bench.interrupted = true;
    });
  log(`bench ${bench.directorUuid} on ${dockerHost ?? 'unix:///var/run/docker.sock'}: ours vs ${command}`);
  try {
    await bench.chooseNetworks();
    const stemcellTgz = option(argv, 'stemcell');
    let image: string;
    if (stemcellTgz) {
      execFileSync('tar', ['-xzf', stemcellTgz, '-C', bench.tmp, 'image']);
      image = join(bench.tmp, 'image');
    } else image = buildStemcell(join(bench.tmp, 'small')).imagePath;
    for (const which of ['ours', 'peer'] as const) {
      const r = runners[which].callSync<string>('create_stemcell', [image, {}]);
      if (r.error)
        throw new Error(`${which} create_stemcell: ${r.error.type}: ${r.error.message}\n${r.stderr}`);
      stemcells[which] = r.result;
    }
    // The first VM of a data_dir prepares it (and creates the helper): keep that out of the numbers.
    const warm = bench.createVmSync(stemcells.ours as string).vmCid;
    bench.cpi.callSync('delete_vm', [warm]);

    // Dynamic: the Go CPI's attach_disk recreates the container, and with a manual network's fixed
    // address it asks the engine for a per-network MAC address, which needs API 1.44 (Docker 25+).
    const manual = option(argv, 'network') === 'manual';
    const networks = () =>
      manual
        ? bench.networksFor(bench.nextIp())
        : {
            default: {
              type: 'dynamic',
              dns: [],
              default: ['dns', 'gateway'],
              cloud_properties: { name: bench.network.name },
            },
          };
    for (let i = 0; i < reps; i++) {
      bench.checkInterrupted();
      const order = i % 2 === 0 ? (['ours', 'peer'] as const) : (['peer', 'ours'] as const);
      for (const which of order) {
        const cpi = runners[which];
        const call = <T>(method: string, args: unknown[]): CpiResult<T> | undefined => {
          const r = cpi.callSync<T>(method, args);
          if (r.error) {
            // The peer's failures are reported, not fatal (e.g. the Go CPI's attach_disk needs API
            // 1.44 to recreate a container); ours end the run.
            if (which === 'peer' && method !== 'create_vm' && method !== 'create_disk') {
              if (!unsupported.has(method)) unsupported.set(method, `${r.error.type}: ${r.error.message}`);
              return undefined;
            }
            throw new Error(
              `${which} ${method}: ${r.error.type}: ${r.error.message}\n${r.stderr.slice(-2000)}`,
            );
          }
          if (methods.includes(method)) {
            samples[method] ??= { ours: [], peer: [] };
            samples[method][which].push(r.ms);
          }
          return r;
        };
        call('info', []);
        const agentId = `agent-${randomUUID().slice(0, 8)}`;
        const vm = call<[string, unknown] | string>(
          'create_vm',
          bench.vmArgs(stemcells[which] as string, agentId, networks()),
        );
        const vmCid = (Array.isArray(vm?.result) ? vm.result[0] : vm?.result) as string;
        (which === 'ours' ? bench.vmCids : peerVms).add(vmCid);
        call('has_vm', [vmCid]);
        call('set_vm_metadata', [
          vmCid,
          { deployment: 'peer-bench', instance_group: 'web', index: String(i) },
        ]);
        const disk = call<string>('create_disk', [1024, {}, vmCid])?.result as string;
        if (which === 'peer') peerDisks.add(disk);
        call('has_disk', [disk]);
        call('set_disk_metadata', [disk, { deployment: 'peer-bench', instance_group: 'web' }]);
        // A failed attach_disk of the Go CPI has removed its container: attach_disk and what needs
        // the disk attached are left out unless asked for (--methods).
        if (methods.includes('attach_disk')) {
          call('attach_disk', [vmCid, disk]);
          if (methods.includes('get_disks')) call('get_disks', [vmCid]);
          call('detach_disk', [vmCid, disk]);
        }
        call('delete_disk', [disk]);
        peerDisks.delete(disk);
        call('delete_vm', [vmCid]);
        (which === 'ours' ? bench.vmCids : peerVms).delete(vmCid);
      }
      log(`rep ${i + 1}/${reps}`);
    }
    const rows = methods.map((method) => {
      const s = samples[method];
      if (!s || unsupported.has(method) || s.peer.length === 0)
        return [method, fmt(s ? summarize(s.ours) : undefined), 'n/a (peer failed, see below)', '—', ''];
      const ours = summarize(s.ours);
      const peer = summarize(s.peer);
      const target = TARGETS[method];
      const r = ratio(ours.median, peer.median);
      return [
        method,
        fmt(ours),
        fmt(peer),
        `${r}×`,
        target === undefined ? '' : `≤ ${target}× ${r <= target ? 'met' : 'NOT met'}`,
      ];
    });
    process.stdout.write(
      `stemcell image: ${stemcellTgz ?? 'test/support/stemcell.ts (small)'}\n` +
        `ours = ${runners.ours.bin} (config docker.host ${dockerHost ?? 'unix:///var/run/docker.sock'}${apiVersion ? `, api_version ${apiVersion}` : ''})\n` +
        `peer = ${command} ${peerConfig}\n` +
        `network: ${manual ? 'manual' : 'dynamic'}, on one pre-made bridge network of that engine\n` +
        `n=${reps} each, interleaved call by call; median (IQR) ms; ratio = ours ÷ peer\n` +
        `${table(['method', 'ours', 'peer', 'ratio', 'target (issue 13)'], rows)}\n` +
        [...unsupported].map(([method, error]) => `peer ${method} failed: ${error.slice(0, 300)}\n`).join(''),
    );
  } finally {
    for (const disk of peerDisks) runners.peer.callSync('delete_disk', [disk]);
    for (const vm of peerVms) runners.peer.callSync('delete_vm', [vm]);
    if (stemcells.peer) runners.peer.callSync('delete_stemcell', [stemcells.peer]);
    if (stemcells.ours) bench.cpi.callSync('delete_stemcell', [stemcells.ours]);
    await bench.cleanup(log);
  }
}
