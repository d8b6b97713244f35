import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * A bootable OpenStack/KVM-style test stemcell, built at test time from this machine's own
 * packages (nothing is downloaded): `image` is a tarball holding `root.img`, a raw disk with an
 * MBR and one FAT partition. SeaBIOS runs syslinux's MBR, which loads syslinux from the
 * partition, which loads the Debian kernel and the initramfs from the same partition.
 *
 * Why syslinux on FAT rather than `-kernel`: the VM must boot from its own disk image the way a
 * real stemcell does (the CPI passes no kernel), and FAT plus mtools lets the image be written
 * without loop devices or mounts. The root file system is the initramfs (busybox), so the
 * kernel's disk and file system drivers can stay modules.
 */
const GUEST_DIR = join(dirname(fileURLToPath(import.meta.url)), 'guest');
const MiB = 1024 * 1024;
const PARTITION_START_SECTOR = 2048;
const DISK_MiB = 48;

/** Kernel modules the guest needs; their dependencies come from modules.dep. */
const MODULES = [
  'virtio_pci',
  'virtio_blk',
  'virtio_net',
  'ata_piix',
  'sr_mod',
  'isofs',
  'crc32c_generic',
  'ext4',
];

export interface TestStemcell {
  dir: string;
  /** The stemcell's `image`: a gzipped tarball holding root.img. */
  imagePath: string;
  manifestPath: string;
  /** root.img itself (raw), for importing a raw image directly. */
  rawImage: string;
  kernelRelease: string;
}

export function findKernel(): { vmlinuz: string; release: string } {
  const kernels = existsSync('/boot') ? readdirSync('/boot').filter((f) => /^vmlinuz-/.test(f)) : [];
  const withModules = kernels
    .map((f) => f.slice('vmlinuz-'.length))
    .filter((r) => existsSync(`/lib/modules/${r}/modules.dep`));
  const release = withModules.sort().at(-1);
  if (!release) throw new Error('No /boot/vmlinuz-* with modules: install linux-image-amd64');
  return { vmlinuz: `/boot/vmlinuz-${release}`, release };
}

/** The modules in load order (dependencies first), as paths relative to /lib/modules/<release>. */
function moduleClosure(release: string): string[] {
  const deps = new Map<string, string[]>();
  for (const line of readFileSync(`/lib/modules/${release}/modules.dep`, 'utf8').split('\n')) {
    const [module, rest] = line.split(':');
    if (module) deps.set(module, (rest ?? '').trim().split(/\s+/).filter(Boolean));
  }
  const byName = new Map([...deps.keys()].map((path) => [basename(path, '.ko'), path]));
  const ordered: string[] = [];
  const visit = (path: string) => {
    if (ordered.includes(path)) return;
    // modules.dep lists a module's dependencies nearest-last: load them in reverse.
    for (const dep of [...(deps.get(path) ?? [])].reverse()) visit(dep);
    ordered.push(path);
  };
  for (const name of MODULES) {
    const path = byName.get(name);
    if (path) visit(path);
  }
  return ordered;
}

function buildInitramfs(dir: string, release: string): string {
  const root = join(dir, 'initramfs');
  for (const d of ['bin', 'etc', 'lib/modules', 'proc', 'sys', 'dev', 'run', 'tmp'])
    mkdirSync(join(root, d), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  const names: string[] = [];
  for (const path of moduleClosure(release)) {
    const name = basename(path, '.ko');
    copyFileSync(`/lib/modules/${release}/${path}`, join(root, 'lib/modules', `${name}.ko`));
    names.push(name);
  }
  writeFileSync(join(root, 'etc/modules'), `${names.join('\n')}\n`);
  const guestFile = (name: string) => readFileSync(join(GUEST_DIR, name));
  writeFileSync(join(root, 'init'), guestFile('init.sh'), { mode: 0o755 });
  writeFileSync(join(root, 'bin/agent'), guestFile('agent.sh'), { mode: 0o755 });
  writeFileSync(join(root, 'bin/agent-lib'), guestFile('agent-lib.sh'), { mode: 0o644 });
  writeFileSync(join(root, 'bin/jsonflat'), guestFile('jsonflat.awk'), { mode: 0o644 });
  const initrd = join(dir, 'initrd.gz');
  execFileSync('sh', [
    '-c',
    'cd "$1" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$2"',
    'sh',
    root,
    initrd,
  ]);
  return initrd;
}

/** An MBR: syslinux's boot code, one active FAT16 (LBA) partition from sector 2048 to the end. */
function writeMbr(disk: string, totalSectors: number): void {
  const mbr = Buffer.alloc(512);
  readFileSync('/usr/lib/syslinux/mbr/mbr.bin').copy(mbr, 0, 0, 440);
  const entry = 446;
  mbr[entry] = 0x80;
  mbr.set([0xfe, 0xff, 0xff], entry + 1); // CHS "use LBA"
  mbr[entry + 4] = 0x0e;
  mbr.set([0xfe, 0xff, 0xff], entry + 5);
  mbr.writeUInt32LE(PARTITION_START_SECTOR, entry + 8);
  mbr.writeUInt32LE(totalSectors - PARTITION_START_SECTOR, entry + 12);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  const fd = openSync(disk, 'r+');
  try {
    writeSync(fd, mbr, 0, 512, 0);
  } finally {
    closeSync(fd);
  }
}

function buildRootImage(dir: string, vmlinuz: string, initrd: string): string {
  const disk = join(dir, 'root.img');
  writeFileSync(disk, '');
  execFileSync('truncate', ['-s', `${DISK_MiB}M`, disk]);
  writeMbr(disk, (DISK_MiB * MiB) / 512);
  const partition = `${disk}@@${PARTITION_START_SECTOR * 512}`;
  // 64 heads x 32 sectors = 1 MiB cylinders; -H: the partition's offset, which syslinux's boot sector adds.
  execFileSync('mformat', [
    '-i',
    partition,
    '-t',
    String(DISK_MiB - 1),
    '-h',
    '64',
    '-n',
    '32',
    '-H',
    String(PARTITION_START_SECTOR),
    '-v',
    'BOOT',
    '::',
  ]);
  execFileSync('syslinux', ['--offset', String(PARTITION_START_SECTOR * 512), '--install', disk]);
  const config = join(dir, 'syslinux.cfg');
  writeFileSync(
    config,
    'SERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL vmlinuz\n  APPEND initrd=initrd.gz console=ttyS0 quiet panic=5\n',
  );
  execFileSync('mcopy', ['-i', partition, vmlinuz, '::vmlinuz']);
  execFileSync('mcopy', ['-i', partition, initrd, config, '::']);
  return disk;
}

/** What building the test stemcell takes from the host, by the Debian package that provides it. */
const HOST_FILES: Array<[string, string]> = [
  ['/usr/lib/syslinux/mbr/mbr.bin', 'syslinux-common'],
  ['/usr/bin/syslinux', 'syslinux'],
  ['/usr/bin/mformat', 'mtools'],
  ['/usr/bin/mcopy', 'mtools'],
  ['/bin/busybox', 'busybox-static'],
];

export function buildTestStemcell(dir: string): TestStemcell {
  const missing = HOST_FILES.filter(([path]) => !existsSync(path)).map(([path, pkg]) => `${path} (${pkg})`);
  if (missing.length)
    throw new Error(`The QEMU tests build their stemcell from host packages; missing: ${missing.join(', ')}`);
  mkdirSync(dir, { recursive: true });
  const { vmlinuz, release } = findKernel();
  const initrd = buildInitramfs(dir, release);
  const rawImage = buildRootImage(dir, vmlinuz, initrd);
  const imagePath = join(dir, 'image');
  execFileSync('tar', ['-czf', imagePath, '-C', dir, 'root.img']);
  const sha1 = execFileSync('sha1sum', [imagePath], { encoding: 'utf8' }).split(' ')[0];
  const manifestPath = join(dir, 'stemcell.MF');
  writeFileSync(
    manifestPath,
    `---\nname: bosh-qemu-busybox-test-stemcell\nversion: '0.1'\noperating_system: busybox\nsha1: ${sha1}\napi_version: 3\nstemcell_formats:\n- openstack-raw\ncloud_properties:\n  disk_format: raw\n  container_format: bare\n`,
  );
  return { dir, imagePath, manifestPath, rawImage, kernelRelease: release };
}
