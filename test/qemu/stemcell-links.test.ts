import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Cpi } from '../support/cpi.ts';
import { newDataDir, qemuConfig, removeConfigs } from './support/host.ts';

/**
 * A stemcell image must be a regular file itself: a `root.img` that is a link to /dev/sda would
 * make a host disk a VM's root (the import copies whatever the link names).
 */
const dataDir = newDataDir();
let work: string;
let hostDisk: string;
const cpi = new Cpi(qemuConfig(dataDir, undefined), 2);

before(() => {
  work = mkdtempSync(join(tmpdir(), 'qemu-links-'));
  // Stands for a host disk: a 1 MiB raw image outside any stemcell.
  hostDisk = join(work, 'host-disk.img');
  writeFileSync(hostDisk, Buffer.alloc(1 << 20, 0x5a));
});

after(() => {
  removeConfigs();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

function tarballWith(name: string, make: (dir: string) => void): string {
  const dir = join(work, name);
  mkdirSync(dir);
  make(dir);
  const tarball = join(work, `${name}.tgz`);
  execFileSync('tar', ['-czf', tarball, '-C', dir, 'root.img']);
  return tarball;
}

async function refused(imagePath: string, message: RegExp): Promise<void> {
  const run = await cpi.run('create_stemcell', [imagePath, {}]);
  assert.equal(run.response.error?.type, 'Bosh::Clouds::CloudError', JSON.stringify(run.response));
  assert.match(run.response.error?.message ?? '', message);
  assert.deepEqual(readdirSync(join(dataDir, 'stemcells')), [], 'no stemcell was stored');
  assert.deepEqual(readdirSync(join(dataDir, 'tmp')), [], 'nothing is left in staging');
}

test('an image path that is a symbolic link is not followed', async () => {
  const link = join(work, 'image-link');
  symlinkSync(hostDisk, link);
  await refused(link, /The stemcell image '.*image-link' is a symbolic link, not a regular file/);
});

test('a root.img that is a symbolic link (to a host disk) is refused', async () => {
  const tarball = tarballWith('symlink', (dir) => symlinkSync(hostDisk, join(dir, 'root.img')));
  await refused(tarball, /The root\.img in the stemcell is a symbolic link, not a regular file/);
});

test('a root.img that is a device node is refused', async () => {
  const tarball = tarballWith('device', (dir) =>
    execFileSync('mknod', [join(dir, 'root.img'), 'c', '1', '3']),
  );
  await refused(tarball, /The root\.img in the stemcell is a character device, not a regular file/);
});

test('an image that is a FIFO is refused at once (it was opened and waited on for ever)', {
  timeout: 30_000,
}, async () => {
  const fifo = join(work, 'image-fifo');
  execFileSync('mkfifo', [fifo]);
  await refused(fifo, /is a FIFO, not a regular file/);
});

test('a regular root.img is still imported', async () => {
  const tarball = tarballWith('regular', (dir) =>
    writeFileSync(join(dir, 'root.img'), Buffer.alloc(1 << 20)),
  );
  const cid = await cpi.call<string>('create_stemcell', [tarball, {}]);
  assert.match(cid, /^stemcell-/);
  await cpi.call('delete_stemcell', [cid]);
});
