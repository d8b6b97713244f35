/**
 * Benchmarks of the CPI against the raw backend work and the start-up floor (issue 5).
 *
 *   npm run bench                  full run (several minutes)
 *   npm run bench -- --quick       CI-sized run
 *   npm run bench -- --only=startup,methods,parallel,deployment,profile
 *   npm run bench -- --padding-mib=300 --reps=15
 *   npm run bench -- --peer "<another CPI command>" --peer-config <file>   (bench/peer.ts)
 *
 * Prints tables on stdout and writes the same numbers to bench/results/<timestamp>.json.
 * It measures; it never fails on a time. Everything it creates (containers, volumes, networks
 * and images labelled with its own director UUID, its data_dir) is removed at the end.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Bench, type Options } from './lib/context.ts';
import { REPO } from './lib/cpi.ts';
import { machine } from './lib/host.ts';
import { fmt, ratio, table } from './lib/stats.ts';
import { peerMain } from './peer.ts';
import { type DeploymentResult, deployment } from './sections/deployment.ts';
import { diskMethods, type MethodRow, stemcellMethods, vmMethods } from './sections/methods.ts';
import { type ParallelRow, parallel } from './sections/parallel.ts';
import { type BlockRow, type ProfileRow, profile } from './sections/profile.ts';
import { type StartupResult, startup } from './sections/startup.ts';

function parseOptions(argv: string[]): Options {
  const flag = (name: string) => argv.includes(`--${name}`);
  const value = (name: string) => argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  const quick = flag('quick');
  const num = (name: string, fallback: number) => {
    const v = value(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
    return n;
  };
  const only = value('only');
  return {
    quick,
    only: only ? new Set(only.split(',')) : undefined,
    paddingMiB: num('padding-mib', quick ? 32 : 300),
    reps: num('reps', quick ? 3 : 15),
    startupReps: num('startup-reps', quick ? 10 : 40),
    stemcellReps: num('stemcell-reps', quick ? 1 : 5),
    parallelReps: num('parallel-reps', quick ? 1 : 3),
    parallelN: (value('parallel') ?? '1,5,20').split(',').map(Number),
  };
}

const log = (line: string) => process.stderr.write(`${line}\n`);

interface Target {
  target: string;
  measured: string;
  met: boolean | undefined;
  bound?: string;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.some((a) => a === '--peer' || a.startsWith('--peer='))) return peerMain(argv);
  const opts = parseOptions(argv);
  const wants = (section: string) => !opts.only || opts.only.has(section);
  const bench = new Bench(opts);
  bench.cpi.retries = 1;
  const dockerVersion = await bench.engine.ok<{ Version: string; ApiVersion: string; KernelVersion: string }>(
    'GET',
    '/version',
  );
  const results: Record<string, unknown> = {
    startedAt: new Date().toISOString(),
    options: { ...opts, only: opts.only ? [...opts.only] : undefined },
    machine: {
      ...machine(),
      cpus: os.cpus().length,
      memoryGiB: Math.round((os.totalmem() / 1073741824) * 10) / 10,
      node: process.version,
      docker: `${dockerVersion.Version} (API ${dockerVersion.ApiVersion})`,
      loadavgStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
      hostCommandsRunDirectly: bench.host.sameNamespace,
    },
    directorUuid: bench.directorUuid,
    dataDir: bench.dataDir,
  };
  log(`bench ${bench.directorUuid}: data_dir ${bench.dataDir}, ${opts.quick ? 'quick' : 'full'} run`);
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      bench.interrupted = true;
      log(`${signal}: stopping after the current step, then cleaning up…`);
    });
  const out: string[] = [];
  const targets: Target[] = [];
  try {
    await bench.chooseNetworks();
    log(
      `networks: ${bench.network.subnet} (pre-made ${bench.network.name}), ${bench.deploymentSubnet.subnet} (CPI-managed)`,
    );

    let start: StartupResult | undefined;
    if (wants('startup')) {
      log('start-up…');
      start = startup(bench, opts.startupReps);
      results.startup = start;
      out.push(startupTable(start));
    }
    const floor = start?.rows['bin/cpi (info)']?.without.median;

    let methods: MethodRow[] = [];
    let stemcellCid: string | undefined;
    let smallImage = '';
    let bigImage = '';
    let vmUntouched: boolean | undefined;
    const needStemcell = wants('methods') || wants('parallel') || wants('deployment') || wants('profile');
    if (needStemcell) {
      log('create_stemcell / delete_stemcell…');
      const stem = await stemcellMethods(bench, log);
      stemcellCid = stem.smallStemcellCid;
      smallImage = stem.smallImagePath;
      bigImage = stem.bigImagePath;
      if (wants('methods')) methods.push(...stem.rows);
    }
    bench.checkInterrupted();
    if (wants('methods') && stemcellCid) {
      log('VM methods…');
      methods.push(...(await vmMethods(bench, stemcellCid, log)));
      bench.checkInterrupted();
      log('disk methods…');
      const d = await diskMethods(bench, stemcellCid, log);
      methods.push(...d.rows);
      vmUntouched = d.vmUntouched;
      results.diskVmState = d.vmState;
      methods = order(methods);
      results.methods = methods;
      out.push(methodsTable(methods, floor));
    }
    bench.checkInterrupted();
    let par: ParallelRow[] | undefined;
    if (wants('parallel') && stemcellCid) {
      log('parallel create_vm…');
      par = await parallel(bench, stemcellCid, log);
      results.parallel = par;
      out.push(parallelTable(par));
    }
    bench.checkInterrupted();
    if (wants('deployment') && stemcellCid) {
      log('deployment-shaped sequence…');
      const dep = await deployment(bench, opts.quick ? smallImage : bigImage, log);
      results.deployment = dep;
      out.push(deploymentTable(dep));
    }
    bench.checkInterrupted();
    if (wants('profile') && stemcellCid) {
      log('profile (traced engine requests)…');
      const p = await profile(bench, stemcellCid, smallImage);
      results.profile = p;
      out.push(profileTable(p.rows, p.blocks));
    }

    if (bench.cpi.failures.length) {
      const lines = bench.cpi.failures.map((f) => `- ${f.method}: ${f.error.slice(0, 300)}`);
      out.push(`## Calls that failed once and were retried (not timed)\n${lines.join('\n')}`);
    }
    targets.push(...evaluate(start, methods, par, vmUntouched));
    results.targets = targets;
    if (targets.length) out.push(targetsTable(targets));
  } finally {
    results.retriedFailures = bench.cpi.failures;
    (results.machine as Record<string, unknown>).loadavgEnd = os
      .loadavg()
      .map((x) => Math.round(x * 100) / 100);
    results.finishedAt = new Date().toISOString();
    await bench.cleanup(log);
    const dir = join(REPO, 'bench/results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${(results.startedAt as string).replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
    const m = results.machine as Record<string, unknown>;
    process.stdout.write(
      `\nMachine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, kernel ${m.kernel}, node ${m.node}, docker ${m.docker}; ` +
        `load average ${String(m.loadavgStart)} → ${String(m.loadavgEnd)}\n` +
        'Times: median (interquartile range), wall ms. Ratios use medians.\n\n' +
        `${out.join('\n\n')}\n\nResults: ${file}\n`,
    );
  }
}

const ORDER = [
  'create_stemcell',
  'delete_stemcell',
  'create_vm',
  '(settings PUT)',
  'has_vm',
  'set_vm_metadata',
  'reboot_vm',
  'delete_vm',
  'calculate_vm_cloud_properties',
  'create_disk',
  'attach_disk',
  'get_disks',
  'has_disk',
  'set_disk_metadata',
  'snapshot_disk',
  'delete_snapshot',
  'detach_disk',
  'resize_disk',
  'delete_disk',
];
const order = (rows: MethodRow[]) =>
  [...rows].sort((a, b) => ORDER.indexOf(a.method) - ORDER.indexOf(b.method));

function startupTable(s: StartupResult): string {
  const rows = Object.entries(s.rows).map(([name, r]) => [name, fmt(r.without), fmt(r.with)]);
  const node = s.rows['node -e 0'];
  const cpi = s.rows['bin/cpi (info)'];
  if (node && cpi) {
    rows.push([
      'ratio bin/cpi info ÷ node -e 0 (same environment)',
      `${ratio(cpi.without.median, node.without.median)}×`,
      `${ratio(cpi.with.median, node.with.median)}×`,
    ]);
  }
  return `## Start-up (n=${cpi?.without.n ?? 0} each, interleaved)\nbin/cpi runs node with NODE_EXTRA_CA_CERTS removed (${s.extraCaCerts} otherwise parsed at every start).\n${table(['command', 'without NODE_EXTRA_CA_CERTS', 'with NODE_EXTRA_CA_CERTS'], rows)}`;
}

function methodsTable(rows: MethodRow[], floor: number | undefined): string {
  const body = rows.map((r) => {
    const raw = r.cpi.n > 0 ? r.rawMs?.median : undefined;
    return [
      r.method,
      fmt(r.cpi),
      fmt(r.rawMs),
      raw !== undefined ? `${ratio(r.cpi.median, raw)}×` : '—',
      raw !== undefined ? `${Math.round(r.cpi.median - raw)}` : '—',
      floor !== undefined && raw !== undefined ? `${ratio(r.cpi.median, raw + floor)}×` : '—',
      `${r.raw}${r.note ? `; ${r.note}` : ''}`,
    ];
  });
  return `## Per method, Docker backend (n=${rows[2]?.cpi.n ?? rows[0]?.cpi.n ?? 0}, create_stemcell n=${rows[0]?.cpi.n ?? 0})\nCPI = one bin/cpi process per call, as the Director runs it. Raw = the same engine requests from an already running process, or the same host commands run directly in the host's mount namespace. floor = median bin/cpi info (${floor ?? '?'} ms).\n${table(['method', 'CPI', 'raw', 'CPI÷raw', 'CPI−raw ms', 'CPI÷(raw+floor)', 'raw work'], body)}`;
}

function parallelTable(rows: ParallelRow[]): string {
  const one = rows.find((r) => r.n === 1);
  const body = rows.map((r) => [
    String(r.n),
    fmt(r.cpi),
    fmt(r.raw),
    `${ratio(r.cpi.median, r.raw.median)}×`,
    fmt(r.rawWithSettings),
    `${ratio(r.cpi.median, r.rawWithSettings.median)}×`,
    one ? `${ratio(r.cpi.median, one.cpi.median)}×` : '—',
    one ? `${ratio(r.raw.median, one.raw.median)}×` : '—',
    one ? `${ratio(r.rawWithSettings.median, one.rawWithSettings.median)}×` : '—',
    fmt(r.cpiPerCall),
    `${fmt(r.cpiDelete)} / ${fmt(r.rawDelete)}`,
  ]);
  const header = [
    'N',
    'CPI total',
    'raw total',
    'CPI÷raw',
    'raw+PUT total',
    'CPI÷(raw+PUT)',
    'CPI T(N)÷T(1)',
    'raw T(N)÷T(1)',
    'raw+PUT T(N)÷T(1)',
    'CPI per call',
    'delete_vm ×N: CPI / raw',
  ];
  return `## Parallel create_vm: N processes at once vs N raw sequences at once (create+start; raw+PUT adds the settings PUT create_vm needs)\n${table(header, body)}`;
}

function deploymentTable(d: DeploymentResult): string {
  const rows = Object.entries(d.phases).map(([k, v]) => [k, `${v}`]);
  rows.push(['total', `${d.total}`]);
  return `## Deployment-shaped sequence (${d.vms} VMs with disks, max_in_flight ${d.vms}, ${d.calls} CPI calls, stemcell ${d.stemcellMiB} MiB)\n${table(['phase', 'wall ms'], rows)}`;
}

function profileTable(rows: ProfileRow[], blocks: BlockRow[]): string {
  const body = rows.map((r) => [
    r.method,
    `${Math.round(r.wall)}`,
    `${Math.round(r.bootstrap)}`,
    r.firstRequest === undefined ? '—' : `${Math.round(r.firstRequest)}`,
    r.lastResponse === undefined ? '—' : `${Math.round(r.lastResponse)}`,
    `${Math.round(r.exit)}`,
    `${r.roundTrips}`,
    `${r.hostOps}`,
    `${Math.round(r.engineBusy)}`,
  ]);
  const b = blocks.map((x) => [x.what, fmt(x.ms)]);
  return `## Profile: one traced call each (ms since process start; tracing adds a few ms)\n${table(
    [
      'method',
      'wall',
      'node ready',
      '1st request',
      'last answer',
      'exit',
      'round trips',
      'host ops',
      'engine busy',
    ],
    body,
  )}\n\nBuilding blocks, from a running process (n=${blocks[0]?.ms.n ?? 0}):\n${table(['step', 'ms'], b)}`;
}

function evaluate(
  start: StartupResult | undefined,
  methods: MethodRow[],
  par: ParallelRow[] | undefined,
  vmUntouched: boolean | undefined,
): Target[] {
  const targets: Target[] = [];
  const m = (name: string) => methods.find((r) => r.method === name);
  const node = start?.rows['node -e 0'];
  const info = start?.rows['bin/cpi (info)'];
  if (node && info) {
    const r0 = ratio(info.without.median, node.without.median);
    const r1 = ratio(info.with.median, node.with.median);
    targets.push({
      target: 'info ≤ 1.15× bare node -e 0',
      measured: `${r0}× without NODE_EXTRA_CA_CERTS (${info.without.median} vs ${node.without.median} ms); ${r1}× with it (${info.with.median} vs ${node.with.median} ms; bin/cpi clears it)`,
      met: r0 <= 1.15 && r1 <= 1.15,
    });
  }
  const floor = info?.without.median;
  const vm = m('create_vm');
  if (vm?.rawMs && floor !== undefined) {
    const limit = 1.1 * vm.rawMs.median + floor;
    targets.push({
      target: 'create_vm ≤ 1.1× raw + start-up floor',
      measured: `${vm.cpi.median} ms vs limit ${Math.round(limit)} ms (raw ${vm.rawMs.median}, floor ${floor})`,
      met: vm.cpi.median <= limit,
    });
  }
  for (const name of ['attach_disk', 'detach_disk']) {
    const row = m(name);
    if (!row) continue;
    targets.push({
      target: `${name} < 300 ms incl. start-up, VM untouched`,
      measured: `${row.cpi.median} ms median (p75 ${row.cpi.p75}, max ${row.cpi.max}); VM untouched: ${vmUntouched ? 'yes' : 'NO'}`,
      met: row.cpi.median < 300 && vmUntouched === true,
    });
  }
  const stem = m('create_stemcell');
  if (stem?.rawMs) {
    const r = ratio(stem.cpi.median, stem.rawMs.median);
    targets.push({
      target: 'create_stemcell ≤ 1.1× raw import',
      measured: `${r}× (${stem.cpi.median} vs ${stem.rawMs.median} ms)`,
      met: r <= 1.1,
    });
  }
  if (par && par.length > 1) {
    const one = par.find((r) => r.n === 1);
    if (one) {
      const parts = par
        .filter((r) => r.n !== 1)
        .map((r) => ({
          n: r.n,
          cpi: ratio(r.cpi.median, one.cpi.median),
          raw: ratio(r.raw.median, one.raw.median),
          put: ratio(r.rawWithSettings.median, one.rawWithSettings.median),
        }));
      targets.push({
        target: 'parallel create_vm scales no worse than raw',
        measured: parts
          .map((p) => `N=${p.n}: CPI ${p.cpi}× vs raw ${p.raw}× (raw+PUT ${p.put}×) of N=1`)
          .join('; '),
        met: parts.every((p) => p.cpi <= p.raw),
      });
    }
  }
  return targets;
}

function targetsTable(targets: Target[]): string {
  return `## Targets (issue 5)\n${table(
    ['target', 'met', 'measured'],
    targets.map((t) => [t.target, t.met === undefined ? '?' : t.met ? 'met' : 'NOT met', t.measured]),
  )}`;
}

main().catch((e) => {
  log(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exitCode = 1;
});
