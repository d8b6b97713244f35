/**
 * A Docker host reboot under the real bosh-agent, run by hand (root; the real stemcell; never the
 * shared engine):
 *
 *   npx tsx e2e/host-reboot.ts --stemcell <docker stemcell tgz> [--root shared|private|both]
 *
 * On a private engine in a mount namespace of its own (shared / like a systemd host, or private /
 * like a container host): create_vm with the create-env HTTPS mbus, create_disk + attach_disk, the
 * agent's add_persistent_disk + mount_disk, data written to /var/vcap/store; then the reboot (engine
 * stopped, its namespace with every loop mount and the mounts/ bind gone, loop devices dropped,
 * engine started). Checks: the agent answers again only with /warden-cpi-dev/<disk> mounted (never
 * on an empty directory), its mount_disk brings back /var/vcap/store with the same data, nothing was
 * written to the bare mount point, delete_vm and delete_disk work. The last line is `N passed, N failed`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Cpi, writeConfig } from '../test/support/cpi.ts';
import { removeDataDir } from '../test/support/docker.ts';
import { startTestEngine, type TestEngine } from '../test/support/engine.ts';
import { agentEnv, DYNAMIC_NETWORKS } from './lib/agent-env.ts';
import { agentCall } from './lib/agent-https.ts';
import { agentMbusCertificate } from './lib/certs.ts';
import { freePort } from './lib/util.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let passed = 0;
let failed = 0;
const check = (ok: boolean, what: string) => {
  console.log(`${ok ? 'PASS' : 'FAIL'} ${what}`);
  if (ok) passed++;
  else failed++;
};

const loopsUnder = (dir: string) =>
  execFileSync('losetup', ['-l', '-n', '-O', 'NAME,BACK-FILE'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter(([, file]) => file?.startsWith(`${dir}/`));

async function scenario(stemcellTgz: string, root: 'shared' | 'private', work: string): Promise<void> {
  const id = randomUUID().slice(0, 8);
  const dataDir = `/var/lib/bosh-cpi-e2e-reboot-${id}`;
  let engine: TestEngine | undefined;
  try {
    engine = await startTestEngine({ mountNamespace: root });
    const e = engine;
    const cert = await agentMbusCertificate(mkdtempSync(join(work, 'certs-')), ['127.0.0.1']);
    const port = await freePort();
    const agent = { url: `https://mbus:mbus-password@127.0.0.1:${port}`, ca: cert.ca };
    const cpi = new Cpi(
      writeConfig({
        docker: { host: e.socket, data_dir: dataDir, default_network: 'bridge' },
        agent: { mbus: 'https://mbus:mbus-password@0.0.0.0:6868', ntp: [] },
      }),
      2,
    );
    cpi.context = { director_uuid: `e2e-reboot-${id}` };
    const dir = mkdtempSync(join(work, 'stemcell-'));
    execFileSync('tar', ['-xzf', stemcellTgz, '-C', dir, 'image']);
    const stemcell = await cpi.call<string>('create_stemcell', [join(dir, 'image'), {}]);
    const env = agentEnv(cert);
    const [vm] = await cpi.call<[string]>('create_vm', [
      `agent-${id}`,
      stemcell,
      { ports: [`127.0.0.1:${port}:6868/tcp`] },
      DYNAMIC_NETWORKS,
      [],
      env,
    ]);
    const container = () => e.docker('ps', '-aq', '--no-trunc', '--filter', `label=io.bosh.cpi.vm=${vm}`);
    const exec = (script: string) => e.dockerTry('exec', container(), '/bin/sh', '-c', script);
    const pong = async (timeoutMs: number) => {
      const t0 = Date.now();
      while (Date.now() - t0 < timeoutMs) {
        if ((await agentCall(agent, 'ping').catch(() => undefined)) === 'pong') return Date.now() - t0;
        await sleep(500);
      }
      return -1;
    };
    check((await pong(180_000)) >= 0, `${root} /: the real agent answers ping after create_vm`);
    const disk = await cpi.call<string>('create_disk', [64, {}, vm]);
    const hint = await cpi.call<string>('attach_disk', [vm, disk]);
    await agentCall(agent, 'add_persistent_disk', [disk, hint]);
    await agentCall(agent, 'mount_disk', [disk]);
    const write = exec(
      'dd if=/dev/urandom of=/var/vcap/store/data bs=64k count=32 2>/dev/null && sync && md5sum < /var/vcap/store/data',
    );
    const sum = write.stdout;
    check(
      write.code === 0 && /^[0-9a-f]{32}/.test(sum),
      `${root} /: data written to /var/vcap/store (${sum.slice(0, 8)})`,
    );

    await e.stop();
    for (const [name] of loopsUnder(dataDir)) spawnSync('losetup', ['-d', name as string]);
    check(
      loopsUnder(dataDir).length === 0,
      `${root} /: after the engine stopped no loop device of the data dir is left`,
    );
    const t0 = Date.now();
    await e.start();
    const back = await pong(240_000);
    check(
      back >= 0,
      `${root} /: the agent answers again ${Math.round((Date.now() - t0) / 1000)} s after the engine started`,
    );
    const mounted = exec(
      `grep -c ' /warden-cpi-dev/${disk} ' /proc/1/mountinfo; grep -c ' /warden-cpi-dev/${disk} ' /proc/self/mountinfo`,
    );
    check(
      mounted.code === 0 && !/^0$/m.test(mounted.stdout),
      `${root} /: the disk is mounted where the agent expects it (${mounted.stdout.replace(/\n/g, ',')})`,
    );
    const waited = e.dockerTry('logs', container());
    const notes = `${waited.stdout}\n${waited.stderr}`.split('\n').filter((l) => l.includes('bosh-cpi:'));
    if (notes.length) console.log(`   the start command said: ${notes.join(' | ')}`);
    const listed = await agentCall(agent, 'list_disk').catch((err) => String(err));
    console.log(`   agent list_disk after the reboot (before mount_disk): ${JSON.stringify(listed)}`);
    await agentCall(agent, 'mount_disk', [disk]);
    const again = exec('md5sum < /var/vcap/store/data');
    check(
      again.stdout === sum,
      `${root} /: after mount_disk /var/vcap/store holds the same data (${again.stdout.slice(0, 8)})`,
    );
    const store = exec('grep " /var/vcap/store " /proc/self/mountinfo | cut -d" " -f3,4');
    console.log(`   /var/vcap/store: ${store.stdout}`);
    await agentCall(agent, 'unmount_disk', [disk]);
    const detach = await cpi.run('detach_disk', [vm, disk]);
    const retried = detach.response.error ? await cpi.run('detach_disk', [vm, disk]) : undefined;
    check(
      !detach.response.error,
      `${root} /: detach_disk after the agent's unmount_disk (${detach.response.error?.message ?? 'ok'}${retried ? `; retried: ${retried.response.error?.message ?? 'ok'}` : ''})`,
    );
    // Detached means no copy of the disk is left anywhere: its loop device goes (autoclear).
    const released = Date.now() + 5000;
    let holding = loopsUnder(`${dataDir}/disks/${disk}`);
    while (holding.length > 0 && Date.now() < released) {
      await new Promise((r) => setTimeout(r, 200));
      holding = loopsUnder(`${dataDir}/disks/${disk}`);
    }
    check(
      holding.length === 0,
      `${root} /: after detach_disk no loop device holds the disk (${JSON.stringify(holding)})`,
    );
    const del = await cpi.run('delete_vm', [vm]);
    check(
      del.response.error === null,
      `${root} /: delete_vm after the reboot (${JSON.stringify(del.response.error)})`,
    );
    check((await cpi.run('delete_disk', [disk])).response.error === null, `${root} /: delete_disk`);
    await cpi.call('delete_stemcell', [stemcell]);
  } catch (err) {
    check(false, `${root} /: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    await engine?.destroy();
    for (const [name] of loopsUnder(dataDir)) spawnSync('losetup', ['-d', name as string]);
    removeDataDir(dataDir);
  }
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  const at = (flag: string) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const stemcell = at('--stemcell');
  if (!stemcell) throw new Error('give --stemcell <docker stemcell tgz>');
  const which = at('--root') ?? 'both';
  const roots = which === 'both' ? (['shared', 'private'] as const) : [which as 'shared' | 'private'];
  const work = mkdtempSync(join(tmpdir(), 'e2e-reboot-'));
  try {
    for (const root of roots) await scenario(resolve(stemcell), root, work);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failed} failed`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(e instanceof Error ? e.stack : e);
    process.exit(1);
  },
);
