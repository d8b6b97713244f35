/**
 * The main job: a full BOSH lifecycle on the local Docker Engine through the real bin/cpi,
 * each step printed with its wall time. Run it with `npm run lifecycle` after scripts/setup.sh.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cpi, writeConfig } from '../test/support/cpi.ts';
import {
  containerOf,
  ensureDockerRunning,
  freeSubnet,
  inVm,
  removeAllFor,
  removeDataDir,
} from '../test/support/docker.ts';
import { buildStemcell } from '../test/support/stemcell.ts';

ensureDockerRunning();
const director = `lifecycle-${randomUUID().slice(0, 8)}`;
const dataDir = `/var/lib/bosh-cpi-lifecycle-${director}`;
const work = mkdtempSync(join(tmpdir(), 'cpi-lifecycle-'));
const subnet = freeSubnet('10.251');
const config = writeConfig({
  docker: { data_dir: dataDir },
  agent: { mbus: 'nats://nats:lifecycle-secret@127.0.0.1:4222', ntp: ['time.example.invalid'] },
});
const cpi = new Cpi(config, 2);
const started = performance.now();
let failed = false;

async function step<T>(name: string, action: () => Promise<T> | T): Promise<T> {
  const t0 = performance.now();
  try {
    const result = await action();
    const shown = result === undefined || result === null ? '' : ` → ${JSON.stringify(result).slice(0, 90)}`;
    console.log(`${(performance.now() - t0).toFixed(0).padStart(6)} ms  ${name}${shown}`);
    return result;
  } catch (e) {
    failed = true;
    console.log(
      `${(performance.now() - t0).toFixed(0).padStart(6)} ms  ${name} FAILED: ${(e as Error).message}`,
    );
    throw e;
  }
}

const network = (host: number) => ({
  default: {
    type: 'manual',
    ip: subnet.ip(host),
    netmask: '255.255.255.0',
    gateway: subnet.gateway,
    dns: [],
    default: ['dns', 'gateway'],
    cloud_properties: {},
  },
});
const env = { bosh: { password: '*', group: 'lifecycle' } };

try {
  console.log(
    `Lifecycle on the local Docker Engine (director ${director}, subnet ${subnet.cidr}, data ${dataDir})`,
  );
  const stemcellFiles = await step('build a busybox test stemcell', () =>
    buildStemcell(join(work, 'stemcell')),
  );
  await step('info', () => cpi.call('info', []));
  const stemcell = await step('create_stemcell', () =>
    cpi.call<string>('create_stemcell', [stemcellFiles.imagePath, {}, { tags: { lifecycle: 'yes' } }], 3),
  );
  const [vm1] = await step('create_vm (manual network)', () =>
    cpi.call<[string, unknown]>('create_vm', ['agent-1', stemcell, { ram: 256 }, network(10), [], env]),
  );
  await step('has_vm', () => cpi.call('has_vm', [vm1]));
  await step('set_vm_metadata', () =>
    cpi.call('set_vm_metadata', [
      vm1,
      { director: 'lifecycle', deployment: 'demo', instance_group: 'web', index: '0' },
    ]),
  );
  const disk = await step('create_disk (256 MiB)', () => cpi.call<string>('create_disk', [256, {}, vm1]));
  await step('attach_disk', () => cpi.call('attach_disk', [vm1, disk]));
  await step('set_disk_metadata', () => cpi.call('set_disk_metadata', [disk, { deployment: 'demo' }]));
  const c1 = containerOf(vm1);
  const data = await step('write data on the disk inside the running VM', () =>
    inVm(
      c1,
      `dd if=/dev/urandom of=/warden-cpi-dev/${disk}/data bs=1M count=8 2>/dev/null && sync && md5sum /warden-cpi-dev/${disk}/data | cut -d' ' -f1`,
    ),
  );
  await step('get_disks', () => cpi.call('get_disks', [vm1]));
  const snapshot = await step('snapshot_disk (while attached)', () =>
    cpi.call<string>('snapshot_disk', [disk, {}]),
  );
  await step('reboot_vm', () => cpi.call('reboot_vm', [vm1]));
  await step('detach_disk', () => cpi.call('detach_disk', [vm1, disk]));
  await step('resize_disk to 512 MiB', () => cpi.call('resize_disk', [disk, 512]));
  const [vm2] = await step('create_vm (second VM)', () =>
    cpi.call<[string, unknown]>('create_vm', ['agent-2', stemcell, {}, network(11), [disk], env]),
  );
  await step('attach_disk to the second VM', () => cpi.call('attach_disk', [vm2, disk]));
  await step('data survived detach, resize and re-attach', () => {
    const sum = inVm(containerOf(vm2), `md5sum /warden-cpi-dev/${disk}/data | cut -d' ' -f1`);
    if (sum !== data) throw new Error(`checksum ${sum} != ${data}`);
    return sum;
  });
  await step('delete_vm (first)', () => cpi.call('delete_vm', [vm1]));
  await step('delete_vm (second, disk still attached)', () => cpi.call('delete_vm', [vm2]));
  await step('delete_snapshot', () => cpi.call('delete_snapshot', [snapshot]));
  await step('delete_disk', () => cpi.call('delete_disk', [disk]));
  await step('delete_stemcell', () => cpi.call('delete_stemcell', [stemcell]));
  await step('idempotent delete_vm answers VMNotFound', async () => {
    const run = await cpi.run('delete_vm', [vm1]);
    if (run.response.error?.type !== 'Bosh::Clouds::VMNotFound')
      throw new Error(JSON.stringify(run.response.error));
    return run.response.error.type;
  });
  const hash = createHash('sha1').update(director).digest('hex').slice(0, 8);
  console.log(`Lifecycle done in ${((performance.now() - started) / 1000).toFixed(1)} s (run ${hash})`);
} finally {
  removeAllFor(director);
  removeDataDir(dataDir);
  rmSync(work, { recursive: true, force: true });
  rmSync(config, { force: true });
}
process.exit(failed ? 1 : 0);
