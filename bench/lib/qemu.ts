import { readFileSync } from 'node:fs';
import type { TestBridge } from '../../test/qemu/support/host.ts';

/** What both modes of bench/qemu-boot.ts get: one bridge, one data_dir, a scratch directory. */
export interface QemuBenchSetup {
  rounds: number;
  dataDir: string;
  bridge: TestBridge;
  work: string;
  /** cloud.properties.qemu besides data_dir and default_bridge. */
  qemuProps: Record<string, unknown>;
}

/** Named series of wall times (ms), one sample per round. */
export type Samples = Record<string, number[]>;

/** The IP of the VM of `round` on the bench's bridge (a new one per round: no stale ARP entry on the host). */
export const roundIp = (bridge: TestBridge, round: number) => `${bridge.prefix}.${50 + round}`;

/** The accelerator and CPU model the VM's QEMU really runs with (its vm.json and its command line). */
export function vmMachine(dataDir: string, vmCid: string): string {
  const dir = `${dataDir}/vms/${vmCid}`;
  const read = (path: string) => readFileSync(path, 'utf8');
  const accel = (JSON.parse(read(`${dir}/vm.json`)) as { accel?: string }).accel ?? '?';
  const argv = read(`/proc/${read(`${dir}/qemu.pid`).trim()}/cmdline`).split('\0');
  return `${accel.toUpperCase()}, -cpu ${argv[argv.indexOf('-cpu') + 1]}`;
}
