import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cpi, writeConfig } from '../support/cpi.ts';
import { removeDataDir } from '../support/docker.ts';
import { startTestEngine, type TestEngine } from '../support/engine.ts';
import { buildStemcell } from '../support/stemcell.ts';

/**
 * A Docker host reboot, simulated on a private engine (never the shared one): the engine runs in a
 * mount namespace of its own, so stopping it drops every loop mount and the mounts/ bind the CPI
 * made (whatever is left is dropped by hand, loop devices too); starting it again is the boot.
 * Once with a shared / (a systemd host), once with a private / (like this machine).
 */
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs)
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting until ${what}`);
    await sleep(500);
  }
  return Date.now() - started;
}

const loopsUnder = (dir: string) =>
  execFileSync('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([, file]) => file?.startsWith(`${dir}/`));
const hostMountsUnder = (dir: string) =>
  readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(`${dir}/`));

for (const root of ['private', 'shared'] as const) {
  describe(`Docker host reboot, host / ${root}`, () => {
    let engine: TestEngine;
    let cpi: Cpi;
    let stemcell: string;
    const id = randomUUID().slice(0, 8);
    const dataDir = `/var/lib/bosh-cpi-test-reboot-${id}`;
    const work = mkdtempSync(join(tmpdir(), 'cpi-reboot-'));
    const vms: string[] = [];
    const disks: string[] = [];

    const containerOf = (vm: string) =>
      engine.docker('ps', '-aq', '--no-trunc', '--filter', `label=io.bosh.cpi.vm=${vm}`).split('\n')[0] ?? '';
    const inVm = (vm: string, script: string) =>
      engine.dockerTry('exec', containerOf(vm), 'sh', '-c', script);
    const bootLines = (vm: string) => inVm(vm, 'cat /var/vcap/bosh/boots').stdout.split('\n').filter(Boolean);

    before(async () => {
      engine = await startTestEngine({ mountNamespace: root });
      const config = writeConfig({
        docker: { host: engine.socket, data_dir: dataDir, default_network: 'bridge' },
        agent: { mbus: 'nats://nats:nats-secret-password@127.0.0.1:4222', ntp: [] },
      });
      cpi = new Cpi(config, 2);
      cpi.context = { director_uuid: `reboot-${id}` };
      stemcell = await cpi.call<string>('create_stemcell', [
        buildStemcell(join(work, 'stemcell')).imagePath,
        {},
      ]);
    });
    after(async () => {
      if (engine?.running()) {
        for (const vm of vms) await cpi.run('delete_vm', [vm]);
        for (const d of disks) await cpi.run('delete_disk', [d]);
      }
      await engine?.destroy();
      for (const [name] of loopsUnder(dataDir)) spawnSync('losetup', ['-d', name as string]);
      removeDataDir(dataDir);
      rmSync(work, { recursive: true, force: true });
    });

    test('the VM comes back with its disks mounted and its data intact; its agent never runs without them', async () => {
      const dynamic = { default: { type: 'dynamic', cloud_properties: {} } };
      const create = async () => {
        const [vm] = await cpi.call<[string]>('create_vm', [
          `agent-${randomUUID().slice(0, 6)}`,
          stemcell,
          { ephemeral_disk: { size: 32 } },
          dynamic,
          [],
          {},
        ]);
        vms.push(vm);
        const disk = await cpi.call<string>('create_disk', [32, {}, vm]);
        disks.push(disk);
        await cpi.call('attach_disk', [vm, disk]);
        await until(
          'the agent stand-in runs',
          () => inVm(vm, 'test -e /var/vcap/bosh/agent-ready').code === 0,
          60_000,
        );
        const sum = inVm(
          vm,
          `dd if=/dev/urandom of=/warden-cpi-dev/${disk}/data bs=64k count=16 2>/dev/null && sync && md5sum < /warden-cpi-dev/${disk}/data`,
        ).stdout;
        assert.match(sum, /^[0-9a-f]{32}/);
        return { vm, disk, sum };
      };
      const running = await create();
      // A second VM the operator stopped before the reboot: the engine leaves it stopped.
      const stopped = await create();
      engine.docker('stop', '-t', '1', containerOf(stopped.vm));
      const bootsBefore = bootLines(running.vm).length;

      // The reboot: engine stopped, its mount namespace (loop mounts, the mounts/ bind) gone.
      await engine.stop();
      for (const m of hostMountsUnder(dataDir).sort((a, b) => b.length - a.length))
        spawnSync('umount', ['-l', m]);
      for (const [name] of loopsUnder(dataDir)) spawnSync('losetup', ['-d', name as string]);
      await until(
        'every loop device of the data dir is gone',
        () => loopsUnder(dataDir).length === 0,
        30_000,
      );
      assert.deepEqual(hostMountsUnder(dataDir), []);
      await engine.start();

      const took = await until(
        'the running VM is back with its disk mounted and its agent started again',
        () =>
          inVm(running.vm, `grep -q ' /warden-cpi-dev/${running.disk} ' /proc/self/mountinfo`).code === 0 &&
          bootLines(running.vm).length > bootsBefore,
        150_000,
      );
      console.log(
        `# host / ${root}: VM back with its disk ${Math.round(took / 1000)} s after the engine started`,
      );
      assert.equal(inVm(running.vm, `md5sum < /warden-cpi-dev/${running.disk}/data`).stdout, running.sum);
      for (const line of bootLines(running.vm).slice(bootsBefore))
        assert.match(line, /start disks=[1-9]/, `the agent started without its disk: ${line}`);
      assert.equal(inVm(running.vm, 'touch /var/vcap/data/probe').code, 0, 'the ephemeral disk is not back');
      assert.deepEqual(await cpi.call('get_disks', [running.vm]), [running.disk]);

      // The stopped VM: attach_disk mounts its disks again and starts it.
      assert.equal(
        engine.docker('inspect', containerOf(stopped.vm), '--format', '{{.State.Running}}'),
        'false',
      );
      const extra = await cpi.call<string>('create_disk', [16, {}, stopped.vm]);
      disks.push(extra);
      const attach = await cpi.run('attach_disk', [stopped.vm, extra]);
      assert.equal(attach.response.error, null, JSON.stringify(attach.response.error));
      assert.equal(
        engine.docker('inspect', containerOf(stopped.vm), '--format', '{{.State.Running}}'),
        'true',
      );
      await until(
        'the stopped VM runs its agent with both disks',
        () => bootLines(stopped.vm).some((l) => /start disks=2/.test(l)),
        60_000,
      );
      assert.equal(inVm(stopped.vm, `md5sum < /warden-cpi-dev/${stopped.disk}/data`).stdout, stopped.sum);

      // Everything deletes cleanly afterwards.
      for (const vm of vms.splice(0)) assert.equal((await cpi.run('delete_vm', [vm])).response.error, null);
      for (const d of disks.splice(0)) assert.equal((await cpi.run('delete_disk', [d])).response.error, null);
      assert.deepEqual(loopsUnder(dataDir), []);
    });
  });
}
