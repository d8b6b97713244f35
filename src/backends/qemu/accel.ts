import { constants } from 'node:fs';
import { access, rm, writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../../log/logger.ts';
import { vmCreationFailed } from '../../rpc/errors.ts';
import { readJsonIfExists, writeJsonAtomic } from '../../util/atomic-file.ts';
import { run } from '../../util/command.ts';
import { FileLock } from '../../util/file-lock.ts';
import type { QemuProperties } from './config.ts';
import type { DataDir } from './paths.ts';

export type Accel = 'kvm' | 'tcg';

/**
 * `accel: auto` uses KVM only when a probe guest really runs under it. /dev/kvm being present
 * is not enough: on nested hosts KVM can fail to emulate real-mode or protected-mode code
 * ("KVM internal error") or hang. The probe is a 512-byte boot sector (probe.S in this
 * directory) that goes the way a kernel does: a BIOS call in real mode, an interrupt and iret
 * in protected mode, paging and long mode, cpuid; then it exits QEMU through isa-debug-exit.
 * Its verdict is cached in data_dir/accel.json per host kernel and QEMU binary.
 */
/** probe.S assembled; the rest of the 512-byte sector is zeros and the 0x55aa boot signature. */
const PROBE_CODE_HEX = [
  'fa31c08ed88ed0bc007ccd120f0116e8',
  '7c0f20c06683c8010f22c0ea207c0800',
  '66b810008ed88ec08ed0bc007c0000b8',
  'bb7c000066a38051000066c705825100',
  '00080066c70584510000008ec1e81066',
  'a3865100000f011dee7c0000cd30bf00',
  '10000031c0b9000c0000f3abc7050010',
  '000003200000c7050020000003300000',
  'c7050030000083000000b8001000000f',
  '22d80f20e083c8200f22e0b9800000c0',
  '0f320d000100000f300f20c00d000000',
  '800f22c0eabc7c00001800cf31c00fa2',
  'b031e6f4f4ebfd900000000000000000',
  'ffff0000009acf00ffff00000092cf00',
  'ffff0000009aaf001f00c87c00008701',
  '0050',
].join('');

const PROBE_EXIT_STATUS = (0x31 << 1) | 1;
const CACHE_LIFETIME_MS = 24 * 60 * 60 * 1000;

interface CachedVerdict {
  accel: Accel;
  reason: string;
  kernel: string;
  qemu: string;
  probed_at: string;
}

export async function kvmUsable(): Promise<boolean> {
  try {
    await access('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** The accelerator for a new QEMU process, as configured (auto: probed, cached, logged). */
export async function chooseAccel(props: QemuProperties, dataDir: DataDir, logger: Logger): Promise<Accel> {
  if (props.accel === 'tcg') return 'tcg';
  if (props.accel === 'kvm') {
    if (!(await kvmUsable()))
      throw vmCreationFailed('accel is "kvm" but /dev/kvm is missing or not accessible', false);
    return 'kvm';
  }
  const qemuId = await binaryIdentity(props.qemu_binary);
  const fresh = (v: CachedVerdict | undefined): v is CachedVerdict =>
    !!v &&
    v.kernel === release() &&
    v.qemu === qemuId &&
    Date.now() - Date.parse(v.probed_at) < CACHE_LIFETIME_MS;
  let verdict = await readJsonIfExists<CachedVerdict>(dataDir.accelCache);
  if (!fresh(verdict)) {
    verdict = await FileLock.with(dataDir.root, 10 * 60_000, async () => {
      const again = await readJsonIfExists<CachedVerdict>(dataDir.accelCache);
      if (fresh(again)) return again;
      const probed = await probe(props, dataDir);
      const record: CachedVerdict = {
        ...probed,
        kernel: release(),
        qemu: qemuId,
        probed_at: new Date().toISOString(),
      };
      await writeJsonAtomic(dataDir.accelCache, record, 0o644);
      return record;
    });
  }
  logger.info(`accel auto: using ${verdict.accel.toUpperCase()} (${verdict.reason})`);
  return verdict.accel;
}

async function binaryIdentity(binary: string): Promise<string> {
  const res = await run(binary, ['--version']).catch(() => undefined);
  return res?.stdout.split('\n')[0]?.trim() ?? binary;
}

async function probe(props: QemuProperties, dataDir: DataDir): Promise<{ accel: Accel; reason: string }> {
  if (!(await kvmUsable())) return { accel: 'tcg', reason: '/dev/kvm is missing or not accessible' };
  const dir = await dataDir.staging('kvmprobe');
  const image = join(dir, 'probe.img');
  try {
    const sector = Buffer.alloc(1 << 20);
    probeBootSector().copy(sector);
    await writeFile(image, sector);
    const started = performance.now();
    let internalError = false;
    const res = await run(
      props.qemu_binary,
      [
        '-machine',
        'pc,accel=kvm',
        // The CPU model real VMs get under KVM: on some hosts it is what fails.
        '-cpu',
        'host',
        '-m',
        '16',
        '-nodefaults',
        '-no-user-config',
        '-display',
        'none',
        '-drive',
        `file=${image},format=raw,if=ide`,
        '-device',
        'isa-debug-exit,iobase=0xf4,iosize=0x04',
      ],
      {
        timeoutMs: props.kvm_probe_timeout_seconds * 1000,
        onStderr: (text) => {
          internalError ||= /KVM internal error|emulation failure/i.test(text);
          return internalError;
        },
      },
    );
    const ms = Math.round(performance.now() - started);
    if (res.exitCode === PROBE_EXIT_STATUS)
      return { accel: 'kvm', reason: `the KVM probe guest reached long mode in ${ms} ms` };
    const why = internalError
      ? 'KVM could not run the probe guest (KVM internal error)'
      : res.timedOut
        ? `the KVM probe guest did not finish within ${props.kvm_probe_timeout_seconds} s`
        : `the KVM probe exited with ${res.exitCode ?? res.signal}: ${res.stderr.trim().split('\n').slice(-1)[0] ?? ''}`;
    return { accel: 'tcg', reason: why };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export function probeBootSector(): Buffer {
  const sector = Buffer.alloc(512);
  Buffer.from(PROBE_CODE_HEX, 'hex').copy(sector);
  sector[510] = 0x55;
  sector[511] = 0xaa;
  return sector;
}
