/**
 * Boot time and per-method wall times of the QEMU backend, one VM at a time (so the numbers are
 * not two VMs fighting over two cores). Needs root, the packages of the QEMU tests and a build:
 *   npm run build && tsx bench/qemu-boot.ts [--rounds N] [--accel auto|kvm|tcg]
 *       [--stemcell <real agent qcow2 stemcell .tgz> [--cpu-model <QEMU -cpu model>]]
 * Without --stemcell: the test stemcell (a stand-in guest printing "BOSHTEST ready"), with the disk
 * methods. With it: the real bosh-agent, timed to its first HTTPS mbus ping (bench/qemu-agent-boot.ts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  consoleText,
  createBridge,
  forceCleanup,
  guest,
  newDataDir,
  qemuConfig,
  removeConfigs,
  TimedCpi,
  timingTable,
  waitForConsole,
} from '../test/qemu/support/host.ts';
import { buildTestStemcell } from '../test/qemu/support/stemcell.ts';
import { type QemuBenchSetup, roundIp, type Samples, vmMachine } from './lib/qemu.ts';
import { agentBootRounds } from './qemu-agent-boot.ts';

async function testStemcellRounds(setup: QemuBenchSetup): Promise<Samples> {
  const { dataDir, bridge } = setup;
  const stemcell = buildTestStemcell(join(setup.work, 'stemcell'));
  const cpi = new TimedCpi(qemuConfig(dataDir, bridge, setup.qemuProps));
  const stemcellCid = await cpi.call<string>('create_stemcell', [stemcell.imagePath, {}]);
  const toReady: number[] = [];
  const guestUptime: number[] = [];
  const rebootToReady: number[] = [];
  for (let round = 0; round < setup.rounds; round++) {
    const ip = roundIp(bridge, round);
    const network = {
      default: { type: 'manual', ip, netmask: '255.255.255.0', gateway: bridge.hostIp, cloud_properties: {} },
    };
    const started = Date.now();
    const [vm] = await cpi.call<[string]>('create_vm', [
      `bench-${round}`,
      stemcellCid,
      { ram: 256, ephemeral_disk: { size: 512 } },
      network,
      [],
      {},
    ]);
    await waitForConsole(dataDir, vm, /^BOSHTEST ready/, { timeoutMs: 300_000 });
    toReady.push(Date.now() - started);
    guestUptime.push(Number(/uptime=([\d.]+)/.exec(consoleText(dataDir, vm))?.[1]) * 1000);
    if (round === 0) console.log(`machine: ${vmMachine(dataDir, vm)}`);
    await cpi.call('set_vm_metadata', [vm, { name: `bench/${round}` }]);
    const disk = await cpi.call<string>('create_disk', [256, { filesystem: 'ext4' }, vm]);
    await cpi.call('attach_disk', [vm, disk]);
    await guest(ip, `mount ${disk}`);
    await cpi.call('get_disks', [vm]);
    await cpi.call('snapshot_disk', [disk, {}]).then((snap) => cpi.call('delete_snapshot', [snap]));
    await guest(ip, `umount ${disk}`);
    await cpi.call('detach_disk', [vm, disk]);
    await cpi.call('resize_disk', [disk, 512]);
    const rebooted = Date.now();
    await cpi.call('reboot_vm', [vm]);
    await waitForConsole(dataDir, vm, /^BOSHTEST ready/, { boot: 2, timeoutMs: 300_000 });
    rebootToReady.push(Date.now() - rebooted);
    await cpi.call('has_vm', [vm]);
    await cpi.call('delete_vm', [vm]);
    await cpi.call('delete_disk', [disk]);
  }
  await cpi.call('delete_stemcell', [stemcellCid]);
  return {
    'create_vm call to the guest\'s "ready"': toReady,
    'guest uptime when its init started': guestUptime,
    'reboot_vm call to "ready" again': rebootToReady,
  };
}

function report(samples: Samples): void {
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
  const width = Math.max(...Object.keys(samples).map((label) => label.length));
  for (const [label, xs] of Object.entries(samples)) {
    const ms = xs.map(Math.round);
    console.log(`${`${label}:`.padEnd(width + 1)} median ${median(ms)} ms (${ms.join(', ')})`);
  }
  console.log(timingTable());
}

const loadAverage = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      rounds: { type: 'string' },
      accel: { type: 'string', default: 'auto' },
      stemcell: { type: 'string' },
      'cpu-model': { type: 'string' },
    },
  });
  if (values['cpu-model'] && !values.stemcell) throw new Error('--cpu-model needs --stemcell');
  const setup: QemuBenchSetup = {
    rounds: Number(values.rounds ?? positionals[0] ?? 3),
    dataDir: newDataDir(),
    bridge: createBridge(),
    work: mkdtempSync(join(tmpdir(), 'qemu-bench-')),
    qemuProps: { accel: values.accel },
  };
  const cleanUp = () => {
    forceCleanup(setup.dataDir, setup.bridge);
    removeConfigs();
    rmSync(setup.work, { recursive: true, force: true });
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const)
    process.once(signal, () => {
      cleanUp();
      process.exit(130);
    });
  console.log(`load average at the start: ${loadAverage()}`);
  try {
    const samples = values.stemcell
      ? await agentBootRounds(setup, values.stemcell, values['cpu-model'])
      : await testStemcellRounds(setup);
    console.log(`load average at the end: ${loadAverage()}`);
    report(samples);
  } finally {
    cleanUp();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
