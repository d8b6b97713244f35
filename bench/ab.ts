/**
 * Compares two builds of the CPI call by call, interleaved, so that load from other users of the
 * machine falls on both alike (used for the before/after numbers of performance commits).
 *
 *   cp -r bin dist /tmp/cpi-before/      # a build of the old code, with its bin/cpi wrapper
 *   npm run build                        # the new code
 *   npx tsx bench/ab.ts --a=/tmp/cpi-before/bin/cpi [--b=other/bin/cpi] [--reps=20] [--methods=attach_disk,info]
 *
 * B is this checkout's bin/cpi unless --b names another. Prints one table; it never fails on a time.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { buildStemcell } from '../test/support/stemcell.ts';
import { Bench, comparisonOptions } from './lib/context.ts';
import { CPI_BIN, CpiRunner, must, processMs } from './lib/cpi.ts';
import { fmt, ratio, summarize, table } from './lib/stats.ts';

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const log = (line: string) => process.stderr.write(`${line}\n`);

async function main(): Promise<void> {
  const aBin = arg('a');
  if (!aBin) throw new Error('--a=/path/to/other/bin/cpi is required');
  const bBin = arg('b') ?? CPI_BIN;
  const reps = Number(arg('reps') ?? 15);
  const only = arg('methods')?.split(',');
  const bench = new Bench(comparisonOptions(reps));
  const runners = {
    A: new CpiRunner(bench.configPath, bench.directorUuid, aBin),
    B: new CpiRunner(bench.configPath, bench.directorUuid, bBin),
  };
  runners.A.retries = 1;
  runners.B.retries = 1;
  bench.cpi.retries = 1;
  const samples: Record<string, { A: number[]; B: number[] }> = {};
  const add = (which: 'A' | 'B', method: string, ms: number) => {
    samples[method] ??= { A: [], B: [] };
    samples[method][which].push(ms);
  };
  try {
    await bench.chooseNetworks();
    const small = buildStemcell(join(bench.tmp, 'small'));
    const stemcell = must(
      'create_stemcell',
      bench.cpi.callSync<string>('create_stemcell', [small.imagePath, {}, { tags: {} }]),
    ).result;
    // The first VM of a data_dir prepares it; keep that out of the numbers.
    must('delete_vm', bench.cpi.callSync('delete_vm', [bench.createVmSync(stemcell).vmCid]));
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_EXTRA_CA_CERTS;
    const info = bench.cpi.request('info', []);
    const wants = (m: string) => !only || only.includes(m);
    for (const signal of ['SIGINT', 'SIGTERM'] as const)
      process.once(signal, () => {
        bench.interrupted = true;
      });
    for (let i = 0; i < reps; i++) {
      bench.checkInterrupted();
      const order = i % 2 === 0 ? (['A', 'B'] as const) : (['B', 'A'] as const);
      if (wants('info')) {
        const bare = processMs('node', ['-e', '0'], '', env);
        add('A', 'node -e 0', bare);
        add('B', 'node -e 0', bare);
        for (const which of order) {
          const bin = which === 'A' ? aBin : bBin;
          add(which, 'info', processMs(bin, [bench.configPath], info, env));
        }
      }
      for (const which of order) {
        const cpi = runners[which];
        const call = (method: string, args: unknown[]) => {
          const r = must(method, cpi.callSync(method, args));
          if (wants(method)) add(which, method, r.ms);
          return r.result;
        };
        const [vmCid] = call('create_vm', bench.vmArgs(stemcell, `agent-${randomUUID().slice(0, 8)}`)) as [
          string,
        ];
        bench.vmCids.add(vmCid);
        call('has_vm', [vmCid]);
        call('set_vm_metadata', [vmCid, { deployment: 'ab', instance_group: 'web', index: String(i) }]);
        const disk = call('create_disk', [1024, {}, vmCid]) as string;
        call('attach_disk', [vmCid, disk]);
        call('get_disks', [vmCid]);
        const snap = call('snapshot_disk', [disk, {}]);
        call('delete_snapshot', [snap]);
        call('detach_disk', [vmCid, disk]);
        call('delete_disk', [disk]);
        call('delete_vm', [vmCid]);
      }
      log(`rep ${i + 1}/${reps}`);
    }
    must('delete_stemcell', bench.cpi.callSync('delete_stemcell', [stemcell]));
    const rows = Object.entries(samples).map(([method, s]) => {
      const a = summarize(s.A);
      const b = summarize(s.B);
      // Samples i of A and B ran back to back: their difference cancels most of the load drift.
      const paired = summarize(s.B.map((x, i) => x - (s.A[i] ?? Number.NaN)));
      return [
        method,
        fmt(a),
        fmt(b),
        `${Math.round(b.median - a.median)}`,
        `${Math.round(paired.median)} (${Math.round(paired.p25)}…${Math.round(paired.p75)})`,
        `${ratio(b.median, a.median)}×`,
      ];
    });
    const header = ['method', 'A', 'B', 'B−A of medians', 'paired B−A: median (IQR)', 'B÷A'];
    process.stdout.write(
      `A = ${aBin}\nB = ${bBin}\nn=${reps} each, interleaved; median (IQR) ms\n${table(header, rows)}\n`,
    );
  } finally {
    await bench.cleanup(log);
  }
}

main().catch((e) => {
  log(e instanceof Error ? (e.stack ?? e.message) : String(e));
  process.exitCode = 1;
});
