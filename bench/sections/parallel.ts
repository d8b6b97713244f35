import { randomUUID } from 'node:crypto';
import type { Bench } from '../lib/context.ts';
import { must } from '../lib/cpi.ts';
import { type Summary, summarize } from '../lib/stats.ts';
import { rawCreateVm, rawDeleteVm, SETTINGS_TAR } from './methods.ts';

export interface ParallelRow {
  n: number;
  /** Wall time from the first spawn to the last exit. */
  cpi: Summary;
  raw: Summary;
  /** The raw work plus the settings PUT before start that create_vm must also do. */
  rawWithSettings: Summary;
  /** Each create_vm process's own wall time, across all repetitions. */
  cpiPerCall: Summary;
  /** Parallel delete_vm of the same VMs (a by-product; the raw side is rm -f + volume rm). */
  cpiDelete: Summary;
  rawDelete: Summary;
}

/** N concurrent create_vm processes against N concurrent raw create+start sequences from this process. */
export async function parallel(
  bench: Bench,
  stemcellCid: string,
  log: (s: string) => void,
): Promise<ParallelRow[]> {
  const image = `bosh-stemcell:${stemcellCid}`;
  const rows: ParallelRow[] = [];
  for (const n of bench.opts.parallelN) {
    const cpi: number[] = [];
    const raw: number[] = [];
    const rawWithSettings: number[] = [];
    const perCall: number[] = [];
    const cpiDelete: number[] = [];
    const rawDelete: number[] = [];
    for (let rep = 0; rep < bench.opts.parallelReps; rep++) {
      bench.checkInterrupted();
      const steps = [
        async () => {
          const ips = Array.from({ length: n }, () => bench.nextIp());
          const started = performance.now();
          const results = await Promise.all(
            ips.map((ip) =>
              bench.cpi.call<[string, unknown]>(
                'create_vm',
                bench.vmArgs(stemcellCid, `agent-${randomUUID().slice(0, 8)}`, bench.networksFor(ip)),
              ),
            ),
          );
          cpi.push(performance.now() - started);
          for (const r of results) {
            if (!r.error) bench.vmCids.add(r.result[0]);
          }
          for (const r of results) must('create_vm', r);
          perCall.push(...results.map((r) => r.ms));
          const delStarted = performance.now();
          const deleted = await Promise.all(results.map((r) => bench.cpi.call('delete_vm', [r.result[0]])));
          cpiDelete.push(performance.now() - delStarted);
          for (const d of deleted) must('delete_vm', d);
        },
        async () => {
          const ips = Array.from({ length: n }, () => bench.nextIp());
          const started = performance.now();
          const vms = await Promise.all(ips.map((ip) => rawCreateVm(bench, image, ip)));
          raw.push(performance.now() - started);
          const delStarted = performance.now();
          await Promise.all(vms.map((vm) => rawDeleteVm(bench, vm)));
          rawDelete.push(performance.now() - delStarted);
        },
        async () => {
          const ips = Array.from({ length: n }, () => bench.nextIp());
          const started = performance.now();
          const vms = await Promise.all(ips.map((ip) => rawCreateVm(bench, image, ip, SETTINGS_TAR)));
          rawWithSettings.push(performance.now() - started);
          await Promise.all(vms.map((vm) => rawDeleteVm(bench, vm)));
        },
      ];
      // Three sides: rotate which goes first from one repetition to the next.
      for (let k = 0; k < rep % steps.length; k++) steps.push(steps.shift() as (typeof steps)[number]);
      for (const step of steps) await step();
      log(`  parallel N=${n} rep ${rep + 1}/${bench.opts.parallelReps}`);
    }
    rows.push({
      n,
      cpi: summarize(cpi),
      raw: summarize(raw),
      rawWithSettings: summarize(rawWithSettings),
      cpiPerCall: summarize(perCall),
      cpiDelete: summarize(cpiDelete),
      rawDelete: summarize(rawDelete),
    });
  }
  return rows;
}
