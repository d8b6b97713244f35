import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, runOk, sleep } from './util.ts';

export interface HandBootInputs {
  /** The CPI's data_dir, and the VM and stemcell the CPI made (read while they still exist). */
  dataDir: string;
  vmCid: string;
  stemcellCid: string;
  bridge: string;
  work: string;
}

export interface CapturedVm {
  image: string;
  configDrive: string;
  mac: string;
  ramMiB: number;
  ephemeralMiB: number;
  accel: string;
}

/**
 * What a hand-made boot of the same VM needs, copied while the CPI's VM still exists: a copy of
 * the stemcell image and of the config drive (same settings: agent id, IP, MAC, mbus, certificates).
 */
export function captureVm(inputs: HandBootInputs): CapturedVm {
  const vmDir = join(inputs.dataDir, 'vms', inputs.vmCid);
  const record = JSON.parse(readFileSync(join(vmDir, 'vm.json'), 'utf8')) as {
    ram_mib: number;
    nics: Array<{ mac: string }>;
    ephemeral: { size_mib: number } | null;
    accel: string;
  };
  const image = join(inputs.work, 'hand-stemcell.qcow2');
  const configDrive = join(inputs.work, 'hand-config-drive.iso');
  copyFileSync(join(inputs.dataDir, 'stemcells', inputs.stemcellCid, 'image.qcow2'), image);
  copyFileSync(join(vmDir, 'config-drive.iso'), configDrive);
  const mac = record.nics[0]?.mac;
  if (!mac) throw new Error(`VM ${inputs.vmCid} has no NIC`);
  return {
    image,
    configDrive,
    mac,
    ramMiB: record.ram_mib,
    ephemeralMiB: record.ephemeral?.size_mib ?? 4096,
    accel: record.accel,
  };
}

/**
 * Boots the captured VM with a plain QEMU command line, no CPI involved: an overlay of the stemcell,
 * a blank ephemeral disk, the config drive as a CD, one tap on the bridge. Returns a stop function.
 */
export async function bootByHand(vm: CapturedVm, inputs: HandBootInputs): Promise<() => Promise<void>> {
  const overlay = join(inputs.work, 'hand-root.qcow2');
  const ephemeral = join(inputs.work, 'hand-ephemeral.qcow2');
  const pidFile = join(inputs.work, 'hand-qemu.pid');
  const tap = `e2eh${process.pid % 100000}`;
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', '-b', vm.image, '-F', 'qcow2', overlay]);
  await runOk('qemu-img', ['create', '-q', '-f', 'qcow2', ephemeral, `${vm.ephemeralMiB}M`]);
  await runOk('ip', ['tuntap', 'add', 'mode', 'tap', 'name', tap]);
  await runOk('ip', ['link', 'set', tap, 'master', inputs.bridge, 'up']);
  const stop = async () => {
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (pid > 0) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {}
        for (let i = 0; i < 50 && (await run('kill', ['-0', String(pid)])).code === 0; i++) await sleep(100);
      }
    }
    await run('ip', ['link', 'del', tap]);
  };
  await runOk('qemu-system-x86_64', [
    '-machine',
    `pc,accel=${vm.accel}`,
    '-cpu',
    vm.accel === 'kvm' ? 'host' : 'qemu64',
    '-smp',
    '1',
    '-m',
    String(vm.ramMiB),
    '-nodefaults',
    '-display',
    'none',
    '-daemonize',
    '-pidfile',
    pidFile,
    '-serial',
    `file:${join(inputs.work, 'hand-console.log')}`,
    '-drive',
    `file=${overlay},format=qcow2,if=virtio`,
    '-drive',
    `file=${ephemeral},format=qcow2,if=virtio`,
    '-drive',
    `file=${vm.configDrive},format=raw,media=cdrom,readonly=on,if=ide`,
    '-netdev',
    `tap,id=n0,ifname=${tap},script=no,downscript=no`,
    '-device',
    `virtio-net-pci,netdev=n0,mac=${vm.mac}`,
  ]).catch(async (e) => {
    await stop();
    throw e;
  });
  return stop;
}
