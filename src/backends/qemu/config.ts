import { dataDir } from '../../config/data-dir.ts';
import { cpiError } from '../../rpc/errors.ts';
import {
  arrayOf,
  bool,
  type Check,
  type Checked,
  CheckFailure,
  int,
  nullable,
  object,
  oneOf,
  optional,
  str,
} from '../../util/check.ts';

/**
 * `cloud.properties.qemu`. Loaded for every call (info included), so this module imports
 * nothing but the checker.
 *
 * data_dir is short and plain on purpose: QEMU's sockets live in it and a unix socket path
 * must fit in 107 bytes ("<data_dir>/vms/vm-<uuid>/console.sock" adds 57), and QEMU's
 * command-line syntax would need commas escaped.
 */
const DATA_DIR = /^\/[A-Za-z0-9._/-]{0,49}$/;
/** A Linux interface name (IFNAMSIZ 16, no slashes or spaces). */
export const INTERFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** Short and plain (see above), and never `..` or a system directory (the shared data_dir rules). */
const qemuDataDir = (): Check<string> => {
  const plain = str({
    pattern: DATA_DIR,
    patternName: 'an absolute path of at most 50 characters from A-Z a-z 0-9 . _ / -',
  });
  const safe = dataDir();
  return (v, path) => safe(plain(v, path), path);
};

const interfaceName = () =>
  str({ pattern: INTERFACE_NAME, patternName: 'a network interface name (at most 15 of A-Z a-z 0-9 _ . -)' });

export const qemuPropertiesCheck = object(
  {
    data_dir: optional(qemuDataDir(), '/var/lib/bosh-qemu-cpi'),
    /** auto: KVM when a probe VM really boots under it within kvm_probe_timeout_seconds, else TCG. */
    accel: optional(oneOf(['auto', 'kvm', 'tcg'] as const), 'auto'),
    default_cpu: optional(int({ min: 1, max: 256 }), 1),
    /** MiB */
    default_ram: optional(int({ min: 32, max: 4 * 1024 * 1024 }), 1024),
    /**
     * MiB of the blank ephemeral disk of VMs whose cloud_properties name no ephemeral_disk (0: none).
     * Sparse: it costs host space only as the agent writes to it.
     */
    default_ephemeral_disk_size: optional(int({ min: 0, max: 16 * 1024 * 1024 }), 4096),
    /** Host bridge for networks whose cloud_properties name none. */
    default_bridge: optional(interfaceName()),
    /** When set, the only host bridges a network's cloud_properties.bridge may name. */
    bridges: optional(arrayOf(interfaceName())),
    qemu_binary: optional(str({ nonEmpty: true }), 'qemu-system-x86_64'),
    qemu_img_binary: optional(str({ nonEmpty: true }), 'qemu-img'),
    kvm_probe_timeout_seconds: optional(int({ min: 1, max: 300 }), 20),
    /** How long detach_disk waits for the guest to release a hot-unplugged disk. */
    detach_timeout_seconds: optional(int({ min: 1, max: 3600 }), 60),
    /** How long reboot_vm waits for the guest to reboot itself after ctrl-alt-delete before it resets the VM by force. */
    reboot_timeout_seconds: optional(int({ min: 1, max: 3600 }), 90),
    /** QEMU under seccomp (`-sandbox on,obsolete=deny,resourcecontrol=deny`). */
    sandbox: optional(bool(), true),
    /**
     * Each VM's QEMU drops to a uid of its own (uid_base+1 … uid_base+65536, gid uid_base) once it
     * has opened its devices (`-runas uid:gid`, QEMU 7.1 or later). null: QEMU stays root.
     */
    vm_uid_base: optional(nullable(int({ min: 1000, max: 2 ** 32 - 2 - 65_536 })), 2_000_000_000),
    /** How long delete_vm waits for QEMU to quit before it kills it. */
    stop_timeout_seconds: optional(int({ min: 1, max: 3600 }), 15),
  },
  { strict: true },
);

export type QemuProperties = Checked<typeof qemuPropertiesCheck>;

export function parseQemuProperties(raw: unknown): QemuProperties {
  try {
    return qemuPropertiesCheck(raw ?? {}, 'config.cloud.properties.qemu');
  } catch (e) {
    if (e instanceof CheckFailure) throw cpiError(`Invalid config: ${e.message}`);
    throw e;
  }
}
