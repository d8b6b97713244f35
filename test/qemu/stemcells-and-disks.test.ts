import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  leftoverFiles,
  newDataDir,
  qemuConfig,
  removeConfigs,
  TimedCpi,
  timingTable,
} from './support/host.ts';
import { buildTestStemcell, type TestStemcell } from './support/stemcell.ts';

/** Stemcell import and disks that no VM holds: everything qemu-img and the records do. */
const dataDir = newDataDir();
let work: string;
let stemcell: TestStemcell;
const cpi = new TimedCpi(qemuConfig(dataDir, undefined));

before(() => {
  work = mkdtempSync(join(tmpdir(), 'qemu-images-'));
  stemcell = buildTestStemcell(join(work, 'stemcell'));
});

after(() => {
  removeConfigs();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
  console.log(`# per-method wall times (no VM):\n${timingTable().replace(/^/gm, '#   ')}`);
});

const qemuImgInfo = (path: string) =>
  JSON.parse(execFileSync('qemu-img', ['info', '--output=json', path], { encoding: 'utf8' }));

/** The ext file system's size in bytes, read from the image with e2fsprogs (on a raw copy). */
function ext4Bytes(diskCid: string): number {
  const raw = join(work, `${diskCid}.raw`);
  execFileSync('qemu-img', [
    'convert',
    '-f',
    'qcow2',
    '-O',
    'raw',
    join(dataDir, 'disks', diskCid, 'disk.qcow2'),
    raw,
  ]);
  const header = execFileSync('dumpe2fs', ['-h', raw], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  rmSync(raw);
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(header)?.[1]);
  return field('Block count') * field('Block size');
}

test('a raw image and a qcow2 image are imported directly as qcow2 base images', async () => {
  const raw = await cpi.call<string>('create_stemcell', [stemcell.rawImage, {}]);
  const qcow2Path = join(work, 'root.qcow2');
  execFileSync('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', stemcell.rawImage, qcow2Path]);
  const qcow2 = await cpi.call<string>('create_stemcell', [qcow2Path, {}]);
  for (const cid of [raw, qcow2]) {
    const info = qemuImgInfo(join(dataDir, 'stemcells', cid, 'image.qcow2'));
    assert.equal(info.format, 'qcow2');
    assert.equal(info['virtual-size'], statSync(stemcell.rawImage).size);
    assert.equal(statSync(join(dataDir, 'stemcells', cid)).mode & 0o777, 0o700);
  }
  const record = JSON.parse(readFileSync(join(dataDir, 'stemcells', qcow2, 'stemcell.json'), 'utf8'));
  assert.equal(record.source_format, 'qcow2');
  for (const cid of [raw, qcow2]) await cpi.call('delete_stemcell', [cid]);
});

test('a qcow2 image that names a backing file is refused (it could read any host file)', async () => {
  const evil = join(work, 'evil.qcow2');
  execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', '/etc/hostname', evil]);
  await assert.rejects(cpi.call('create_stemcell', [evil, {}]), /refers to another file/);
  const tarball = join(work, 'no-root.tgz');
  writeFileSync(join(work, 'other.img'), 'x');
  execFileSync('tar', ['-czf', tarball, '-C', work, 'other.img']);
  await assert.rejects(cpi.call('create_stemcell', [tarball, {}]), /without root\.img/);
  await assert.rejects(
    cpi.call('create_stemcell', [join(work, 'missing'), {}]),
    /Cannot read stemcell image/,
  );
  assert.deepEqual(readdirSync(join(dataDir, 'stemcells')), []);
  assert.deepEqual(readdirSync(join(dataDir, 'tmp')), [], 'failed imports leave no staging files');
});

test('create_disk: blank by default, ext4 on the whole device on request; metadata is stored', async () => {
  const blank = await cpi.call<string>('create_disk', [64, {}, null]);
  const ext4 = await cpi.call<string>('create_disk', [128, { filesystem: 'ext4' }, null]);
  for (const [cid, mib] of [
    [blank, 64],
    [ext4, 128],
  ] as const) {
    assert.match(cid, /^disk-[0-9a-f]{15}$/);
    assert.equal(await cpi.call('has_disk', [cid]), true);
    const info = qemuImgInfo(join(dataDir, 'disks', cid, 'disk.qcow2'));
    assert.equal(info.format, 'qcow2');
    assert.equal(info['virtual-size'], mib * 1024 * 1024);
  }
  assert.equal(ext4Bytes(ext4), 128 * 1024 * 1024);
  await cpi.call('set_disk_metadata', [ext4, { deployment: 'd', instance_id: 'i-1' }]);
  assert.deepEqual(JSON.parse(readFileSync(join(dataDir, 'disks', ext4, 'disk.json'), 'utf8')).metadata, {
    deployment: 'd',
    instance_id: 'i-1',
  });

  // Growing a detached disk grows its whole-device ext4 file system; shrinking is not supported.
  await cpi.call('resize_disk', [ext4, 256]);
  assert.equal(qemuImgInfo(join(dataDir, 'disks', ext4, 'disk.qcow2'))['virtual-size'], 256 * 1024 * 1024);
  assert.equal(ext4Bytes(ext4), 256 * 1024 * 1024);
  await cpi.call('resize_disk', [ext4, 256]);
  const smaller = await cpi.run('resize_disk', [ext4, 100]);
  assert.equal(smaller.response.error?.type, 'Bosh::Clouds::NotSupported');
  await cpi.call('resize_disk', [blank, 96]);
  assert.equal(qemuImgInfo(join(dataDir, 'disks', blank, 'disk.qcow2'))['virtual-size'], 96 * 1024 * 1024);

  // A detached snapshot is a standalone copy; deleting it twice is fine.
  const snap = await cpi.call<string>('snapshot_disk', [ext4, { reason: 'test' }]);
  const snapshot = JSON.parse(readFileSync(join(dataDir, 'snapshots', snap, 'snapshot.json'), 'utf8'));
  assert.deepEqual(
    [snapshot.disk_cid, snapshot.taken, snapshot.metadata],
    [ext4, 'offline', { reason: 'test' }],
  );
  assert.equal(
    qemuImgInfo(join(dataDir, 'snapshots', snap, 'snapshot.qcow2'))['backing-filename'],
    undefined,
  );
  await cpi.call('delete_snapshot', [snap]);
  await cpi.call('delete_snapshot', [snap]);

  for (const cid of [blank, ext4]) {
    await cpi.call('delete_disk', [cid]);
    assert.equal(await cpi.call('has_disk', [cid]), false);
    const again = await cpi.run('delete_disk', [cid]);
    assert.equal(again.response.error?.type, 'Bosh::Clouds::DiskNotFound');
    assert.equal(again.exitCode, 0);
  }
  assert.deepEqual(leftoverFiles(dataDir), []);
});

test('concurrent CPI processes on the same disk are serialized, and nothing half-made is visible', async () => {
  const cids = await Promise.all(
    Array.from({ length: 4 }, () => cpi.call<string>('create_disk', [32, { filesystem: 'ext4' }, null])),
  );
  assert.equal(new Set(cids).size, 4);
  const [first] = cids as [string];
  // Metadata writes and a resize race on one disk: every call succeeds and the record stays whole.
  await Promise.all([
    cpi.call('resize_disk', [first, 64]),
    ...Array.from({ length: 4 }, (_, i) => cpi.call('set_disk_metadata', [first, { writer: String(i) }])),
  ]);
  const record = JSON.parse(readFileSync(join(dataDir, 'disks', first, 'disk.json'), 'utf8'));
  assert.equal(record.size_mib, 64);
  assert.match(record.metadata.writer, /^[0-3]$/);
  // While disks are created and deleted, every listed disk directory is complete.
  const creating = Promise.all(
    Array.from({ length: 3 }, () => cpi.call<string>('create_disk', [16, {}, null])),
  );
  const deleting = Promise.all(cids.map((cid) => cpi.call('delete_disk', [cid])));
  const seen: string[][] = [];
  for (let i = 0; i < 20; i++) {
    for (const cid of readdirSync(join(dataDir, 'disks'))) {
      const dir = join(dataDir, 'disks', cid);
      // A directory deleted between readdir and the check is fine; one still there without its record is not.
      if (!existsSync(join(dir, 'disk.json')) && existsSync(dir)) seen.push([cid]);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  const created = await creating;
  await deleting;
  assert.deepEqual(seen.flat(), [], 'a disk directory without its record was visible');
  for (const cid of created) await cpi.call('delete_disk', [cid]);
  assert.deepEqual(leftoverFiles(dataDir), []);
});
