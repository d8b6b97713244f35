import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  calculateVmCloudProperties,
  LIMITS,
  parseVmSizing,
  type SizingOptions,
} from '../../src/cpi/cloud-properties.ts';
import { CpiFailure } from '../../src/rpc/errors.ts';

const DOCKER: SizingOptions = { fractionalCpu: true };
const QEMU: SizingOptions = { fractionalCpu: false };

function refused(props: Record<string, unknown>, opts: SizingOptions, message: RegExp): void {
  assert.throws(
    () => parseVmSizing(props, opts),
    (e: unknown) =>
      e instanceof CpiFailure &&
      e.type === 'Bosh::Clouds::VMCreationFailed' &&
      e.okToRetry === false &&
      message.test(e.message),
    JSON.stringify(props),
  );
}

test('sizes within the bounds are read in MiB and CPUs', () => {
  assert.deepEqual(parseVmSizing({ cpu: 2, ram: 2048, ephemeral_disk: { size: 10240 } }, QEMU), {
    cpu: 2,
    ramMiB: 2048,
    ephemeralDiskMiB: 10240,
  });
  assert.deepEqual(parseVmSizing({ cpu: 0.5, root_disk: { size: 4096 } }, DOCKER), {
    cpu: 0.5,
    rootDiskMiB: 4096,
  });
  assert.deepEqual(parseVmSizing({ unrelated: 'kept for the backend' }, DOCKER), {});
  assert.deepEqual(
    parseVmSizing({ cpu: LIMITS.cpu, ram: LIMITS.ramMiB, ephemeral_disk: { size: LIMITS.diskMiB } }, QEMU),
    { cpu: LIMITS.cpu, ramMiB: LIMITS.ramMiB, ephemeralDiskMiB: LIMITS.diskMiB },
  );
});

test('a huge ram is refused instead of becoming "no limit" (1e303 turned into Memory: null)', () => {
  for (const opts of [DOCKER, QEMU]) {
    refused({ ram: 1e303 }, opts, /cloud_properties\.ram must be a whole number of MiB from 1 to 16777216/);
    refused({ ram: LIMITS.ramMiB + 1 }, opts, /cloud_properties\.ram/);
    refused({ ram: 2 ** 53 }, opts, /cloud_properties\.ram/);
    refused({ ram: 1.5 }, opts, /cloud_properties\.ram/);
    refused({ ram: 0 }, opts, /cloud_properties\.ram/);
    refused({ ram: '1G' }, opts, /cloud_properties\.ram/);
  }
});

test('a tiny cpu is refused instead of rounding to NanoCpus 0 (no limit)', () => {
  refused({ cpu: 1e-12 }, DOCKER, /cloud_properties\.cpu must be a number of CPUs from 0\.01 to 1024/);
  refused({ cpu: 0.001 }, DOCKER, /cloud_properties\.cpu/);
  refused({ cpu: 0 }, DOCKER, /cloud_properties\.cpu/);
  refused({ cpu: -1 }, DOCKER, /cloud_properties\.cpu/);
  refused({ cpu: Number.NaN }, DOCKER, /cloud_properties\.cpu/);
  assert.equal(parseVmSizing({ cpu: 0.01 }, DOCKER).cpu, 0.01);
});

test('QEMU cpu must be whole and bounded (it had no upper bound)', () => {
  refused({ cpu: 0.5 }, QEMU, /cloud_properties\.cpu must be a whole number of CPUs from 1 to 1024/);
  refused({ cpu: 1025 }, QEMU, /cloud_properties\.cpu/);
  refused({ cpu: 1e9 }, QEMU, /cloud_properties\.cpu/);
  refused({ cpu: 'two' }, QEMU, /cloud_properties\.cpu/);
});

test('disk sizes are bounded below 2^43 MiB, where MiB × 1048576 overflows 64-bit shell arithmetic', () => {
  assert.ok(LIMITS.diskMiB * 1048576 < 2 ** 63);
  for (const key of ['ephemeral_disk', 'root_disk']) {
    refused({ [key]: { size: 2 ** 43 } }, DOCKER, new RegExp(`cloud_properties\\.${key}\\.size`));
    refused({ [key]: { size: LIMITS.diskMiB + 1 } }, QEMU, new RegExp(`cloud_properties\\.${key}\\.size`));
    refused({ [key]: { size: 0 } }, QEMU, new RegExp(`cloud_properties\\.${key}\\.size`));
    refused({ [key]: 1024 }, DOCKER, new RegExp(`cloud_properties\\.${key} must be an object`));
    refused({ [key]: {} }, DOCKER, new RegExp(`cloud_properties\\.${key}\\.size`));
  }
});

test('calculate_vm_cloud_properties gives what create_vm reads back, and no ephemeral disk for 0', () => {
  const props = calculateVmCloudProperties({ cpu: 2, ram: 1024, ephemeral_disk_size: 2048 });
  assert.deepEqual(props, { cpu: 2, ram: 1024, ephemeral_disk: { size: 2048 } });
  assert.deepEqual(parseVmSizing(props, QEMU), { cpu: 2, ramMiB: 1024, ephemeralDiskMiB: 2048 });
  const none = calculateVmCloudProperties({ cpu: 1, ram: 512, ephemeral_disk_size: 0 });
  assert.deepEqual(none, { cpu: 1, ram: 512 });
  assert.deepEqual(parseVmSizing(none, DOCKER), { cpu: 1, ramMiB: 512 });
});
