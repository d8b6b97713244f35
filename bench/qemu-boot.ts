/**
 * Boot time and per-method wall times of the QEMU backend, one VM at a time (so the numbers are
 * not two VMs fighting over two cores). Needs root, the packages of the QEMU tests and a build:
 *   npm run build && tsx bench/qemu-boot.ts [rounds]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
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

const rounds = Number(process.argv[2] ?? 3);
const dataDir = newDataDir();
const bridge = createBridge();
const work = mkdtempSync(join(tmpdir(), 'qemu-bench-'));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

async function main(): Promise<void> {
  const stemcell = buildTestStemcell(join(work, 'stemcell'));
  const cpi = new TimedCpi(qemuConfig(dataDir, bridge));
  const stemcellCid = await cpi.call<string>('create_stemcell', [stemcell.imagePath, {}]);
  const toReady: number[] = [];
  const guestUptime: number[] = [];
  const rebootToReady: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const ip = `${bridge.prefix}.${50 + round}`;
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
  console.log(
    `load average at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
  console.log(`create_vm call to the guest's "ready": median ${median(toReady)} ms (${toReady.join(', ')})`);
  console.log(
    `guest uptime when its init started:   median ${median(guestUptime)} ms (${guestUptime.join(', ')})`,
  );
  console.log(
    `reboot_vm call to "ready" again:       median ${median(rebootToReady)} ms (${rebootToReady.join(', ')})`,
  );
  console.log(timingTable());
}

main()
  .catch((e) => {
    console.error(e);
    process.exitCode = 1;
  })
  .finally(() => {
    forceCleanup(dataDir, bridge);
    removeConfigs();
    rmSync(work, { recursive: true, force: true });
  });
