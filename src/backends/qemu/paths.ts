import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { DiskCid, SnapshotCid, StemcellCid, VmCid } from '../../cpi/types.ts';

/**
 * The layout of data_dir, the source of truth of this backend (the CPI is a process per call):
 *
 *   stemcells/<stemcell-cid>/{image.qcow2, stemcell.json}
 *   vms/<vm-cid>/{vm.json, settings.json, root.qcow2, ephemeral.qcow2, config-drive.iso,
 *                 qmp.sock, console.sock, console.log, qemu.pid, metadata.json}
 *   disks/<disk-cid>/{disk.qcow2, disk.json}
 *   snapshots/<snap-cid>/{snapshot.qcow2, snapshot.json}
 *   tmp/    staging: things are built here and renamed into place when complete
 *   accel.json   the cached result of the KVM probe
 *
 * A stemcell, disk or snapshot exists once its directory has been renamed into place; a VM
 * exists once vm.json has been written (its directory must carry its final name before QEMU
 * starts, because QEMU keeps the paths). Each resource directory is also its lock.
 */
export class DataDir {
  readonly stemcells: string;
  readonly vms: string;
  readonly disks: string;
  readonly snapshots: string;
  /** Staging: things are built here and renamed into place when complete. */
  readonly tmp: string;
  readonly accelCache: string;

  constructor(readonly root: string) {
    this.stemcells = join(root, 'stemcells');
    this.vms = join(root, 'vms');
    this.disks = join(root, 'disks');
    this.snapshots = join(root, 'snapshots');
    this.tmp = join(root, 'tmp');
    this.accelCache = join(root, 'accel.json');
  }

  stemcell(cid: StemcellCid) {
    const dir = join(this.stemcells, cid);
    return { dir, image: join(dir, 'image.qcow2'), record: join(dir, 'stemcell.json') };
  }

  vm(cid: VmCid) {
    const dir = join(this.vms, cid);
    return {
      dir,
      record: join(dir, 'vm.json'),
      /** Names the stemcell of a VM still being created, so delete_stemcell keeps its image. */
      creating: join(dir, 'creating.json'),
      settings: join(dir, 'settings.json'),
      metadata: join(dir, 'metadata.json'),
      root: join(dir, 'root.qcow2'),
      ephemeral: join(dir, 'ephemeral.qcow2'),
      configDrive: join(dir, 'config-drive.iso'),
      configDriveStaging: join(dir, 'config-drive'),
      qmp: join(dir, 'qmp.sock'),
      console: join(dir, 'console.sock'),
      consoleLog: join(dir, 'console.log'),
      pid: join(dir, 'qemu.pid'),
    };
  }

  disk(cid: DiskCid) {
    const dir = join(this.disks, cid);
    return { dir, image: join(dir, 'disk.qcow2'), record: join(dir, 'disk.json') };
  }

  snapshot(cid: SnapshotCid) {
    const dir = join(this.snapshots, cid);
    return { dir, image: join(dir, 'snapshot.qcow2'), record: join(dir, 'snapshot.json') };
  }

  async ensure(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    for (const dir of [this.stemcells, this.vms, this.disks, this.snapshots, this.tmp])
      await mkdir(dir, { recursive: true, mode: 0o700 });
  }

  /** A fresh staging directory; its name carries our pid so leftovers of dead processes can be swept. */
  async staging(kind: string): Promise<string> {
    const dir = join(this.tmp, `${kind}-${process.pid}-${randomBytes(6).toString('hex')}`);
    await mkdir(dir, { mode: 0o700 });
    return dir;
  }

  /** Removes a directory so that it disappears at once: renamed into tmp first, then deleted. */
  async removeDir(dir: string): Promise<void> {
    const doomed = join(this.tmp, `removed-${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      await rename(dir, doomed);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw e;
    }
    await rm(doomed, { recursive: true, force: true });
  }

  /** Deletes staging directories whose creating process is gone (a CPI killed half-way). */
  async sweepStaging(): Promise<void> {
    let entries: string[];
    try {
      entries = await readdir(this.tmp);
    } catch {
      return;
    }
    for (const name of entries) {
      const pid = Number(/^[a-z]+-(\d+)-[0-9a-f]+$/.exec(name)?.[1]);
      if (!pid || pid === process.pid || processAlive(pid)) continue;
      await rm(join(this.tmp, name), { recursive: true, force: true });
    }
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
