/**
 * The numbers a manifest puts in a VM type's or disk type's cloud_properties, parsed once for
 * every backend. Each is bounded: a value the host cannot honour must be refused here, never
 * turned into "no limit" (ram 1e303 → Memory null, cpu 1e-12 → NanoCpus 0) or into an overflow
 * of a host script's 64-bit shell arithmetic (MiB × 1048576).
 */
import { vmCreationFailed } from '../rpc/errors.ts';
import { type Check, CheckFailure, describe, object, optional } from '../util/check.ts';
import type { CloudProperties, VmResources } from './types.ts';

/** Upper bounds (the largest hosts today have a few hundred CPUs and a few TiB of memory). */
export const LIMITS = {
  cpu: 1024,
  /** 16 TiB */
  ramMiB: 16 * 1024 * 1024,
  /** 1 PiB: ×1048576 stays far below 2^63 (the limit was 2^43 MiB). */
  diskMiB: 1024 * 1024 * 1024,
  /** A fraction of a CPU for engines that take one (Docker's minimum is 0.01). */
  minCpuFraction: 0.01,
} as const;

/** A whole number from `min` to `max`, explained in `unit`. */
export function boundedInt(min: number, max: number, unit: string): Check<number> {
  const expected = `a whole number of ${unit} from ${min} to ${max}`;
  return (v, path) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
      throw new CheckFailure(path, expected, describe(v));
    return v;
  };
}

/** Whole CPUs (QEMU vCPUs). */
export const cpuCount = (): Check<number> => boundedInt(1, LIMITS.cpu, 'CPUs');

/** CPUs, fractions allowed (Docker's NanoCpus); never small enough to round to 0 (= no limit). */
export const cpuShare = (): Check<number> => {
  const expected = `a number of CPUs from ${LIMITS.minCpuFraction} to ${LIMITS.cpu}`;
  return (v, path) => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < LIMITS.minCpuFraction || v > LIMITS.cpu)
      throw new CheckFailure(path, expected, describe(v));
    return v;
  };
};

export const ramMiB = (): Check<number> => boundedInt(1, LIMITS.ramMiB, 'MiB');
export const diskMiB = (): Check<number> => boundedInt(1, LIMITS.diskMiB, 'MiB');

/** `{"size": <MiB>}`, the shape of `ephemeral_disk` and `root_disk`. */
const sizedDisk = (): Check<{ size: number }> => {
  const check = object({ size: diskMiB() });
  return (v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v))
      throw new CheckFailure(path, 'an object such as {"size": 10240}', describe(v));
    return check(v, path);
  };
};

/** The sizing part of a VM's cloud_properties; absent keys are left to the backend's defaults. */
export interface VmSizing {
  /** CPUs; a whole number unless the backend allows fractions. */
  cpu?: number;
  ramMiB?: number;
  ephemeralDiskMiB?: number;
  rootDiskMiB?: number;
}

export interface SizingOptions {
  /** Whether `cpu` may be a fraction (Docker) or must be whole (QEMU vCPUs). */
  fractionalCpu: boolean;
}

/**
 * Reads cpu, ram, ephemeral_disk.size and root_disk.size from a create_vm's cloud_properties.
 * A bad value is VMCreationFailed (not retryable) naming the property.
 */
export function parseVmSizing(props: CloudProperties, opts: SizingOptions): VmSizing {
  const check = object({
    cpu: optional(opts.fractionalCpu ? cpuShare() : cpuCount()),
    ram: optional(ramMiB()),
    ephemeral_disk: optional(sizedDisk()),
    root_disk: optional(sizedDisk()),
  });
  try {
    const parsed = check(props, 'cloud_properties');
    const sizing: VmSizing = {};
    if (parsed.cpu !== undefined) sizing.cpu = parsed.cpu;
    if (parsed.ram !== undefined) sizing.ramMiB = parsed.ram;
    if (parsed.ephemeral_disk !== undefined) sizing.ephemeralDiskMiB = parsed.ephemeral_disk.size;
    if (parsed.root_disk !== undefined) sizing.rootDiskMiB = parsed.root_disk.size;
    return sizing;
  } catch (e) {
    if (e instanceof CheckFailure) throw vmCreationFailed(e.message, false);
    throw e;
  }
}

/**
 * calculate_vm_cloud_properties for every backend: the Director's desired size in the keys
 * parseVmSizing reads. An ephemeral size of 0 means "none" (the VM gets the backend's default).
 */
export function calculateVmCloudProperties(resources: VmResources): CloudProperties {
  return {
    cpu: resources.cpu,
    ram: resources.ram,
    ...(resources.ephemeral_disk_size > 0 ? { ephemeral_disk: { size: resources.ephemeral_disk_size } } : {}),
  };
}
