import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { diskSerial, nicMac } from '../../src/backends/qemu/ids.ts';
import { diskCid as asDiskCid, vmCid as asVmCid } from '../support/ids.ts';
import {
  consoleText,
  cpiTaps,
  createBridge,
  forceCleanup,
  guest,
  leftoverFiles,
  newDataDir,
  ping,
  processesMentioning,
  qemuConfig,
  removeConfigs,
  type TestBridge,
  TimedCpi,
  timingTable,
  waitForConsole,
} from './support/host.ts';
import { buildTestStemcell, type TestStemcell } from './support/stemcell.ts';

/**
 * The whole life of two real VMs under TCG: booted from a stemcell disk, reachable on a private
 * bridge at their manual IPs, a persistent disk moved from one to the other with its data, a
 * reboot that keeps it, and deletion that leaves nothing behind.
 */
const dataDir = newDataDir();
let bridge: TestBridge;
let stemcell: TestStemcell;
let cpi: TimedCpi;
let work: string;
let stemcellCid: string;
const vms: Record<'a' | 'b', { cid: string; ip: string; createdAt: number }> = {} as never;
let diskCid: string;
const boot: Record<string, number> = {};

const network = (ip: string) => ({
  default: {
    type: 'manual',
    ip,
    netmask: '255.255.255.0',
    gateway: bridge.hostIp,
    dns: [bridge.hostIp],
    default: ['dns', 'gateway'],
    cloud_properties: {},
  },
});

before(() => {
  work = mkdtempSync(join(tmpdir(), 'qemu-lifecycle-'));
  stemcell = buildTestStemcell(join(work, 'stemcell'));
  bridge = createBridge();
  cpi = new TimedCpi(qemuConfig(dataDir, bridge));
});

after(() => {
  removeConfigs();
  forceCleanup(dataDir, bridge);
  rmSync(work, { recursive: true, force: true });
  console.log(`# per-method wall times (TCG, 2 cores):\n${timingTable().replace(/^/gm, '#   ')}`);
  for (const [vm, ms] of Object.entries(boot))
    console.log(`#   boot of ${vm}: ${ms} ms from create_vm returning to the guest's "ready"`);
});

test('create_stemcell imports the OpenStack-style tarball (root.img inside) as a qcow2 base image', async () => {
  stemcellCid = await cpi.call<string>('create_stemcell', [stemcell.imagePath, { disk_format: 'raw' }]);
  assert.match(stemcellCid, /^stemcell-[0-9a-f-]{36}$/);
  const image = join(dataDir, 'stemcells', stemcellCid, 'image.qcow2');
  const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', image], { encoding: 'utf8' }));
  assert.equal(info.format, 'qcow2');
  assert.equal(info['virtual-size'], statSync(stemcell.rawImage).size);
  assert.equal(info['backing-filename'], undefined);
});

test('two VMs boot from their stemcell disks and get their settings from the config drive', async () => {
  const started = Date.now();
  const [a, b] = await Promise.all(
    (['a', 'b'] as const).map(async (name, i) => {
      const ip = `${bridge.prefix}.${10 + i}`;
      const result = await cpi.call<[string, Record<string, unknown>]>('create_vm', [
        `agent-${name}`,
        stemcellCid,
        { cpu: 1, ram: 256, ephemeral_disk: { size: 512 } },
        network(ip),
        [],
        { bosh: { password: 'secret-crypted-password' } },
      ]);
      return { cid: result[0], ip, createdAt: Date.now(), networks: result[1] };
    }),
  );
  assert.ok(a && b);
  vms.a = a;
  vms.b = b;
  console.log(`# create_vm x2 in parallel: ${Date.now() - started} ms`);
  assert.deepEqual(a.networks, network(a.ip), 'create_vm returns the networks it was given');

  for (const [name, vm] of Object.entries(vms)) {
    const ready = waitForConsole(dataDir, vm.cid, /^BOSHTEST ready/);
    const bootLine = await waitForConsole(dataDir, vm.cid, /^BOSHTEST boot/);
    // syslinux on the stemcell disk loaded the kernel (no -kernel on QEMU's command line).
    assert.match(bootLine, /BOOT_IMAGE=vmlinuz initrd=initrd\.gz/);
    assert.match(consoleText(dataDir, vm.cid), /SYSLINUX/);
    const pid = Number(readFileSync(join(dataDir, 'vms', vm.cid, 'qemu.pid'), 'utf8'));
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    assert.ok(!cmdline.includes('-kernel'), 'QEMU boots the disk, not a kernel file');
    assert.ok(cmdline.includes('-daemonize'));

    const settingsLine = await waitForConsole(dataDir, vm.cid, /^BOSHTEST settings/);
    assert.match(settingsLine, new RegExp(`agent_id=agent-${name} vm=${vm.cid}`));
    assert.match(settingsLine, /ephemeral=e[0-9a-f]{19}$/);
    const netLine = await waitForConsole(dataDir, vm.cid, /^BOSHTEST net/);
    assert.equal(
      netLine,
      `BOSHTEST net name=default device=eth0 mac=${nicMac(asVmCid(vm.cid), 'default')} ip=${vm.ip}`,
    );
    await ready;
    boot[vm.cid] = Date.now() - vm.createdAt;
  }
});

test('the config drive is an ISO labelled config-2 whose settings files are 0600', () => {
  const iso = join(dataDir, 'vms', vms.a.cid, 'config-drive.iso');
  assert.equal(statSync(iso).mode & 0o777, 0o600);
  assert.match(execFileSync('isoinfo', ['-d', '-i', iso], { encoding: 'utf8' }), /Volume id: config-2/);
  const listing = execFileSync('isoinfo', ['-R', '-l', '-i', iso], { encoding: 'utf8' });
  for (const file of ['user_data.json', 'user_data', 'meta_data.json', 'user-data', 'meta-data.json'])
    assert.match(listing, new RegExp(`^-rw------- +1 +0 +0 .* ${file} $`, 'm'), file);
  const settings = JSON.parse(
    execFileSync('isoinfo', ['-R', '-x', '/openstack/latest/user_data.json', '-i', iso], {
      encoding: 'utf8',
    }),
  );
  assert.equal(settings.agent_id, 'agent-a');
  assert.equal(settings.networks.default.preconfigured, false);
  assert.equal(settings.networks.default.mac, nicMac(asVmCid(vms.a.cid), 'default'));
  assert.equal(settings.mbus, 'nats://nats:nats-secret-password@127.0.0.1:4222');
  assert.deepEqual(settings.env, { bosh: { password: 'secret-crypted-password' } });
  assert.deepEqual(settings.disks.persistent, {});
});

test('the host reaches each VM at its manual IP on the bridge (ping and a TCP echo)', async () => {
  for (const vm of Object.values(vms)) {
    assert.ok(ping(vm.ip), `ping ${vm.ip}`);
    assert.equal(await guest(vm.ip, `echo hello ${vm.cid}`), `hello ${vm.cid}`);
  }
});

test('has_vm and set_vm_metadata', async () => {
  assert.equal(await cpi.call('has_vm', [vms.a.cid]), true);
  assert.equal(await cpi.call('has_vm', ['vm-00000000-0000-0000-0000-000000000000']), false);
  const metadata = {
    director: 'test-director',
    deployment: 'd',
    instance_group: 'web',
    index: '0',
    name: 'web/abc',
  };
  await cpi.call('set_vm_metadata', [vms.a.cid, metadata]);
  assert.deepEqual(
    JSON.parse(readFileSync(join(dataDir, 'vms', vms.a.cid, 'metadata.json'), 'utf8')),
    metadata,
  );
});

test("each VM's QEMU runs under seccomp as a uid of its own, never root (issue 12)", () => {
  const uids = new Set<string>();
  for (const vm of Object.values(vms)) {
    const pid = readFileSync(join(dataDir, 'vms', vm.cid, 'qemu.pid'), 'utf8').trim();
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const uid = /^Uid:\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(status);
    assert.ok(uid, status);
    assert.ok(
      uid.slice(1).every((u) => Number(u) > 2_000_000_000),
      `QEMU of ${vm.cid} runs as ${uid[0]}`,
    );
    uids.add(uid[1] as string);
    assert.match(status, /^Seccomp:\s+2$/m, `QEMU of ${vm.cid} is not under a seccomp filter`);
    const record = JSON.parse(readFileSync(join(dataDir, 'vms', vm.cid, 'vm.json'), 'utf8'));
    assert.equal(String(record.run_as.uid), uid[1]);
  }
  assert.equal(uids.size, 2, 'the two VMs run as different uids');
});

test('a hot-plugged disk appears in the guest under its hinted id and takes data', async () => {
  diskCid = await cpi.call<string>('create_disk', [512, { filesystem: 'ext4' }, vms.a.cid]);
  const hint = await cpi.call<Record<string, string>>('attach_disk', [vms.a.cid, diskCid]);
  // The CID is the virtio serial, so the agent's by-id glob on the whole CID finds the disk.
  assert.equal(diskCid.length, 20);
  assert.deepEqual(hint, { id: diskCid, path: `/dev/disk/by-id/virtio-${diskCid}` });
  assert.deepEqual(await cpi.call('get_disks', [vms.a.cid]), [diskCid]);
  await cpi.call('set_disk_metadata', [diskCid, { deployment: 'd', instance_group: 'web' }]);

  // The refreshed config drive names the disk too (what CPI API v1 callers rely on).
  const settings = await guest(vms.a.ip, 'settings');
  assert.match(settings, new RegExp(`^disks\\.persistent\\.${diskCid}\\.id\\t${hint.id}$`, 'm'));
  assert.match(await guest(vms.a.ip, `resolve ${diskCid}`), /^vd[c-z] id$/);
  const mounted = await guest(vms.a.ip, `mount ${diskCid}`);
  assert.match(mounted, /^OK vd[c-z]$/);
  assert.match(await guest(vms.a.ip, 'devices'), new RegExp(`vd[c-z]:${hint.id}:1048576`));
  assert.equal(await guest(vms.a.ip, `write ${diskCid} written-in-vm-a`), 'OK');
  assert.equal(await guest(vms.a.ip, `read ${diskCid}`), 'written-in-vm-a');
});

test('snapshot_disk copies an attached disk consistently through a QEMU backup job', async () => {
  const snap = await cpi.call<string>('snapshot_disk', [diskCid, { note: 'while attached' }]);
  const record = JSON.parse(readFileSync(join(dataDir, 'snapshots', snap, 'snapshot.json'), 'utf8'));
  assert.equal(record.taken, 'backup-job');
  assert.equal(record.disk_cid, diskCid);
  const image = join(dataDir, 'snapshots', snap, 'snapshot.qcow2');
  execFileSync('qemu-img', ['check', '-q', image]);
  await cpi.call('delete_snapshot', [snap]);
  assert.equal(existsSync(join(dataDir, 'snapshots', snap)), false);
  await cpi.call('delete_snapshot', [snap]);
});

test('a disk of an earlier version (disk-<uuid>, serial of 20 hex digits) is found through the hint path', async () => {
  const made = await cpi.call<string>('create_disk', [64, { filesystem: 'ext4' }, vms.a.cid]);
  const uuid = '0123abcd-4567-89ef-0123-456789abcdef';
  const oldCid = `disk-${uuid}`;
  renameSync(join(dataDir, 'disks', made), join(dataDir, 'disks', oldCid));
  const recordPath = join(dataDir, 'disks', oldCid, 'disk.json');
  const record = JSON.parse(readFileSync(recordPath, 'utf8'));
  writeFileSync(recordPath, JSON.stringify({ ...record, cid: oldCid, serial: '0123abcd456789ef0123' }));
  assert.equal(await cpi.call('has_disk', [oldCid]), true);
  const hint = await cpi.call<Record<string, string>>('attach_disk', [vms.a.cid, oldCid]);
  assert.deepEqual(hint, { id: '0123abcd456789ef0123', path: '/dev/disk/by-id/virtio-0123abcd456789ef0123' });
  // No by-id name ends with the 41-character CID: the agent's glob fails and its fallback takes the path.
  assert.match(await guest(vms.a.ip, `resolve ${oldCid}`), /^vd[c-z] path$/);
  await cpi.call('detach_disk', [vms.a.cid, oldCid]);
  await cpi.call('delete_disk', [oldCid]);
  assert.equal(existsSync(join(dataDir, 'disks', oldCid)), false);
});

test('detach, grow while detached, attach to the other VM: the data came along and the file system grew', async () => {
  assert.equal(await guest(vms.a.ip, `umount ${diskCid}`), 'OK');
  await cpi.call('detach_disk', [vms.a.cid, diskCid]);
  assert.deepEqual(await cpi.call('get_disks', [vms.a.cid]), []);
  assert.doesNotMatch(await guest(vms.a.ip, 'devices'), new RegExp(diskSerial(asDiskCid(diskCid))));
  await assert.rejects(cpi.call('detach_disk', [vms.a.cid, diskCid]), /DiskNotAttached/);

  await cpi.call('resize_disk', [diskCid, 1024]);
  await assert.rejects(cpi.call('resize_disk', [diskCid, 256]), /NotSupported/);

  await cpi.call('attach_disk', [vms.b.cid, diskCid]);
  await assert.rejects(cpi.call('attach_disk', [vms.a.cid, diskCid]), /attached to VM/);
  assert.match(await guest(vms.b.ip, `mount ${diskCid}`), /^OK vd[c-z]$/);
  assert.equal(await guest(vms.b.ip, `read ${diskCid}`), 'written-in-vm-a');
  const blocks = Number((await guest(vms.b.ip, `df ${diskCid}`)).split(/\s+/)[1]);
  assert.ok(blocks > 900 * 1024, `the ext4 file system grew to ~1 GiB (df says ${blocks} KiB)`);
  assert.equal(await guest(vms.b.ip, `write ${diskCid} written-in-vm-b`), 'OK');
});

test('reboot_vm reboots the guest cleanly: its disk stays attached and unsynced writes survive', async () => {
  // Not synced: only an orderly reboot (file systems unmounted) keeps it, a hard reset loses it.
  assert.equal(await guest(vms.b.ip, `put ${diskCid} put-before-reboot`), 'OK');
  await cpi.call('reboot_vm', [vms.b.cid]);
  await waitForConsole(dataDir, vms.b.cid, /^BOSHTEST ctrl-alt-delete: rebooting cleanly/, { boot: 1 });
  const rebooted = Date.now();
  await waitForConsole(dataDir, vms.b.cid, /^BOSHTEST ready/, { boot: 2 });
  boot[`${vms.b.cid} (reboot)`] = Date.now() - rebooted;
  // The guest found the disk while it booted again: it stayed plugged in across the reset.
  await waitForConsole(
    dataDir,
    vms.b.cid,
    new RegExp(`^BOSHTEST disks .*vd[c-z]:${diskSerial(asDiskCid(diskCid))}:`),
    {
      boot: 2,
    },
  );
  assert.deepEqual(await cpi.call('get_disks', [vms.b.cid]), [diskCid]);
  assert.match(await guest(vms.b.ip, `mount ${diskCid}`), /^OK vd[c-z]$/);
  assert.equal(await guest(vms.b.ip, `read ${diskCid}`), 'put-before-reboot');
});

test('delete_vm leaves no process, socket, tap or file, and the persistent disk survives', async () => {
  for (const vm of Object.values(vms)) {
    await cpi.call('delete_vm', [vm.cid]);
    assert.deepEqual(processesMentioning(vm.cid), []);
    assert.equal(existsSync(join(dataDir, 'vms', vm.cid)), false);
    assert.equal(await cpi.call('has_vm', [vm.cid]), false);
    await assert.rejects(cpi.call('delete_vm', [vm.cid]), /VMNotFound/);
  }
  assert.deepEqual(cpiTaps(), []);
  assert.equal(await cpi.call('has_disk', [diskCid]), true);
  const record = JSON.parse(readFileSync(join(dataDir, 'disks', diskCid, 'disk.json'), 'utf8'));
  assert.equal(record.attached_to, null);
  assert.deepEqual(record.metadata, { deployment: 'd', instance_group: 'web' });
  // The data is still there: copy it out of the image and read it with e2fsprogs.
  const raw = join(work, 'disk.raw');
  execFileSync('qemu-img', [
    'convert',
    '-f',
    'qcow2',
    '-O',
    'raw',
    join(dataDir, 'disks', diskCid, 'disk.qcow2'),
    raw,
  ]);
  assert.equal(
    execFileSync('debugfs', ['-R', 'cat /data', raw], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim(),
    'put-before-reboot',
  );
});

test('deleting the disk and the stemcell leaves data_dir empty', async () => {
  await cpi.call('delete_disk', [diskCid]);
  await assert.rejects(cpi.call('delete_disk', [diskCid]), /DiskNotFound/);
  await cpi.call('delete_stemcell', [stemcellCid]);
  await cpi.call('delete_stemcell', [stemcellCid]);
  assert.deepEqual(leftoverFiles(dataDir), []);
  assert.deepEqual(processesMentioning(dataDir), []);
});
