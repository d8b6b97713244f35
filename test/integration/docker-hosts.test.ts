import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cpi, type CpiRun, writeConfig } from '../support/cpi.ts';
import {
  docker,
  dockerTry,
  ensureDockerRunning,
  freeSubnet,
  removeAllFor,
  removeDataDir,
} from '../support/docker.ts';
import { startTestEngine, type TestEngine } from '../support/engine.ts';
import { buildStemcell } from '../support/stemcell.ts';

/**
 * One CPI over two engines: the shared one on /var/run/docker.sock ("local") and a private one
 * started here, reached over TCP with mutual TLS ("remote"). Only the private engine is stopped.
 */
const AGENT = { mbus: 'nats://nats:nats-secret-password@127.0.0.1:4222', ntp: [] };
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
const localPart = (cid: string) => cid.split('@')[0] as string;

function expectError(run: CpiRun, type: string, ...patterns: RegExp[]): string {
  assert.equal(run.exitCode, 0);
  assert.equal(run.response.error?.type, type, JSON.stringify(run.response));
  const message = run.response.error?.message ?? '';
  for (const p of patterns) assert.match(message, p);
  return message;
}

describe('Docker backend: several hosts', () => {
  const director = `hosts-${randomUUID().slice(0, 8)}`;
  const dataDirs = {
    local: `/var/lib/bosh-cpi-test-${director}-local`,
    remote: `/var/lib/bosh-cpi-test-${director}-remote`,
  };
  let engine: TestEngine;
  let cpi: Cpi;
  let stemcellPath: string;
  let stemcell: string;
  let work: string;
  let silent: Server;
  const sockets: Socket[] = [];
  const configs: string[] = [];
  const vms: string[] = [];
  const disks: string[] = [];
  let nets: { local: ReturnType<typeof freeSubnet>; remote: ReturnType<typeof freeSubnet> };
  let ip = 10;
  let hadDocker0 = false;

  const config = (docker: Record<string, unknown>) => {
    const path = writeConfig({ docker, agent: AGENT });
    configs.push(path);
    const c = new Cpi(path, 2);
    c.context = { director_uuid: director };
    return c;
  };
  const hosts = (overrides: { remote?: Record<string, unknown> } = {}) => [
    { name: 'local', host: 'unix:///var/run/docker.sock', data_dir: dataDirs.local },
    {
      name: 'remote',
      host: engine.tcp,
      // Inline PEM and file paths both work.
      tls: {
        ca: engine.tlsFiles.ca,
        certificate: engine.tls.certificate,
        private_key: engine.tls.privateKey,
      },
      data_dir: dataDirs.remote,
      ...overrides.remote,
    },
  ];
  const network = (on: 'local' | 'remote') => {
    const subnet = nets[on];
    return {
      default: {
        type: 'manual',
        ip: subnet.ip(ip++),
        netmask: '255.255.255.0',
        gateway: subnet.gateway,
        dns: [],
        default: ['dns', 'gateway'],
        cloud_properties: {},
      },
    };
  };
  const createVm = async (
    c: Cpi,
    net: 'local' | 'remote',
    props: Record<string, unknown>,
    diskCids: string[] = [],
  ) => {
    const run = await c.run('create_vm', [
      `agent-${randomUUID().slice(0, 8)}`,
      stemcell,
      props,
      network(net),
      diskCids,
      {},
    ]);
    assert.equal(run.response.error, null, JSON.stringify(run.response.error));
    const [cid] = run.response.result as [string];
    vms.push(cid);
    return { cid, log: run.response.log };
  };
  /** The container of a VM on one engine, by the ID that engine knows. */
  const containerOn = (on: 'local' | 'remote', vmCid: string) => {
    const args = ['ps', '-aq', '--no-trunc', '--filter', `label=io.bosh.cpi.vm=${localPart(vmCid)}`];
    return on === 'local' ? docker(...args) : engine.docker(...args);
  };
  const imageOn = (on: 'local' | 'remote', cid: string) =>
    (on === 'local' ? dockerTry : engine.dockerTry)('image', 'inspect', `bosh-stemcell:${cid}`).code === 0;

  before(async () => {
    ensureDockerRunning();
    work = mkdtempSync(join(tmpdir(), 'cpi-hosts-'));
    stemcellPath = buildStemcell(join(work, 'stemcell')).imagePath;
    const local = freeSubnet('10.254');
    let remote = freeSubnet('10.254');
    while (remote.base === local.base) remote = freeSubnet('10.254');
    nets = { local, remote };
    hadDocker0 = existsSync('/sys/class/net/docker0');
    engine = await startTestEngine();
    assert.equal(existsSync('/sys/class/net/docker0'), hadDocker0, "the shared engine's bridge is untouched");
    cpi = config({ hosts: hosts() });
    // A "host" that accepts connections and never answers, for placement's timeout.
    silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  });

  after(async () => {
    if (engine && !engine.running()) await engine.start().catch(() => undefined);
    for (const vm of vms) await cpi?.run('delete_vm', [vm]).catch(() => undefined);
    for (const disk of disks) await cpi?.run('delete_disk', [disk]).catch(() => undefined);
    for (const s of sockets) s.destroy();
    silent?.close();
    removeAllFor(director);
    await engine?.destroy();
    removeDataDir(dataDirs.local);
    removeDataDir(dataDirs.remote);
    for (const c of configs) rmSync(dirname(c), { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  test('create_stemcell imports into every host at once under one CID, and logs no TLS key', async () => {
    const run = await cpi.run('create_stemcell', [stemcellPath, {}]);
    assert.equal(run.response.error, null, JSON.stringify(run.response.error));
    stemcell = run.response.result as string;
    assert.match(
      stemcell,
      new RegExp(`^stemcell-${UUID.source}$`),
      'a stemcell CID names no host: it is on all',
    );
    assert.ok(imageOn('local', stemcell) && imageOn('remote', stemcell));
    assert.match(run.response.log, /\[local\] Imported 100%/);
    assert.match(run.response.log, /\[remote\] Imported 100%/);
    const key = engine.tls.privateKey.split('\n')[1] as string;
    assert.ok(key.length > 20);
    assert.ok(
      !run.response.log.includes(key) && !run.stderr.includes(key),
      'the private key is never logged',
    );
  });

  let onRemote: string;
  let onLocal: string;
  test('cloud_properties.host (an AZ) picks the host; the VM ID names it', async () => {
    const remote = await createVm(cpi, 'remote', { host: 'remote' });
    onRemote = remote.cid;
    assert.match(onRemote, new RegExp(`^vm-${UUID.source}@remote$`));
    assert.match(
      remote.log,
      /Placing the VM of agent '[^']+' on Docker host 'remote': cloud_properties.host names it/,
    );
    assert.ok(containerOn('remote', onRemote), 'the container runs on the remote engine');
    assert.equal(containerOn('local', onRemote), '', 'and not on the local one');
    const local = await createVm(cpi, 'local', { host: 'local' });
    onLocal = local.cid;
    assert.match(onLocal, /@local$/);
    assert.ok(containerOn('local', onLocal));
    assert.equal(await cpi.call('has_vm', [onRemote]), true);
    assert.equal(await cpi.call('has_vm', [onLocal]), true);

    const unknown = await cpi.run('create_vm', [
      'agent-x',
      stemcell,
      { host: 'mars' },
      network('local'),
      [],
      {},
    ]);
    expectError(
      unknown,
      'Bosh::Clouds::VMCreationFailed',
      /cloud_properties.host "mars"/,
      /hosts: local, remote/,
    );
    assert.equal(unknown.response.error?.ok_to_retry, false);
  });

  let disk: string;
  let checksum: string;
  test("a disk is created on its VM's host, and create_vm puts a VM next to its disks", async () => {
    disk = await cpi.call<string>('create_disk', [64, {}, onRemote]);
    disks.push(disk);
    assert.match(disk, new RegExp(`^disk-${UUID.source}@remote$`));
    assert.ok(existsSync(`${dataDirs.remote}/disks/${localPart(disk)}/disk.img`));
    assert.ok(!existsSync(`${dataDirs.local}/disks/${localPart(disk)}`));
    assert.equal(await cpi.call('has_disk', [disk]), true);
    const hint = await cpi.call<string>('attach_disk', [onRemote, disk]);
    assert.equal(hint, `/warden-cpi-dev/${localPart(disk)}`);
    assert.deepEqual(await cpi.call('get_disks', [onRemote]), [disk], 'get_disks answers cloud IDs');
    const c = containerOn('remote', onRemote);
    engine.docker('exec', c, 'sh', '-c', `head -c 3000000 /dev/urandom > ${hint}/data`);
    checksum = engine.docker('exec', c, 'sh', '-c', `md5sum ${hint}/data | cut -d' ' -f1`);
    await cpi.call('detach_disk', [onRemote, disk]);
    await cpi.call('delete_vm', [onRemote]);
    assert.equal(await cpi.call('has_vm', [onRemote]), false);

    const again = await createVm(cpi, 'remote', {}, [disk]);
    onRemote = again.cid;
    assert.match(onRemote, /@remote$/);
    assert.match(again.log, new RegExp(`on Docker host 'remote': it holds the VM's persistent disk ${disk}`));
    await cpi.call('attach_disk', [onRemote, disk]);
    const c2 = containerOn('remote', onRemote);
    assert.equal(engine.docker('exec', c2, 'sh', '-c', `md5sum ${hint}/data | cut -d' ' -f1`), checksum);
  });

  test('attaching a disk to a VM on another host is refused, naming both hosts', async () => {
    const other = await cpi.call<string>('create_disk', [32, {}, onLocal]);
    disks.push(other);
    assert.match(other, /@local$/);
    const refused = await cpi.run('attach_disk', [onRemote, other]);
    const message = expectError(
      refused,
      'Bosh::Clouds::CloudError',
      /Docker host 'local'/,
      /Docker host 'remote'/,
    );
    assert.match(message, /stays on its host/);
    assert.deepEqual(await cpi.call('get_disks', [onRemote]), [disk], 'nothing was attached');
    expectError(await cpi.run('detach_disk', [onRemote, other]), 'Bosh::Clouds::DiskNotAttached', /'local'/);
    // A snapshot restores on its own host only.
    const snap = await cpi.call<string>('snapshot_disk', [other, {}]);
    assert.match(snap, /^snap-.*@local$/);
    expectError(
      await cpi.run('create_disk', [32, { snapshot_cid: snap }, onRemote]),
      'Bosh::Clouds::CloudError',
      /Snapshot '.*@local' is on Docker host 'local' but VM '.*@remote' is on 'remote'/,
    );
    await cpi.call('delete_snapshot', [snap]);
  });

  test('without hints a VM goes to the least loaded host that answers; hosts that do not are named', async () => {
    const port = (silent.address() as { port: number }).port;
    const wide = config({
      allow_insecure_tcp: true,
      hosts: [
        ...hosts(),
        { name: 'silent', host: `tcp://127.0.0.1:${port}`, data_dir: '/var/lib/bosh-cpi-test-unused' },
        { name: 'refusing', host: 'tcp://127.0.0.1:1', data_dir: '/var/lib/bosh-cpi-test-unused' },
      ],
    });
    const started = performance.now();
    // No network: the VM may land on either engine, and both share this machine's routing table.
    const run = await wide.run('create_vm', ['agent-ll', stemcell, {}, {}, [], {}]);
    // Either engine may be the less loaded (others use the shared one); the log says which and why.
    const placed =
      /on Docker host '(\w+)': least loaded reachable host \(local: (\d+) VMs; remote: (\d+) VMs;/.exec(
        run.response.log,
      );
    assert.ok(placed, run.response.log);
    const [, host, local, remote] = placed;
    const silentWhy = /; silent: ([^;]*);/.exec(run.response.log)?.[1];
    const refusingWhy = /; refusing: (.*)\)$/m.exec(run.response.log)?.[1];
    if (run.response.error === null) vms.push((run.response.result as [string])[0]);
    if (Number(local) !== Number(remote))
      assert.equal(host, Number(local) < Number(remote) ? 'local' : 'remote');
    assert.match(silentWhy ?? '', /no answer within 5 s/);
    assert.match(
      refusingWhy ?? '',
      /'refusing' \(tcp:\/\/127\.0\.0\.1:1\) is unreachable: connection refused/,
    );
    assert.ok(performance.now() - started < 25_000, 'a silent host costs the placement timeout, no more');
    assert.equal(run.response.error, null, JSON.stringify(run.response.error));
    assert.match((run.response.result as [string])[0], new RegExp(`@${host}$`));
  });

  test('IDs without a host part belong to the first host; IDs naming an unknown host are errors', async () => {
    const single = config({ data_dir: dataDirs.local });
    const [legacy] = await single.call<[string]>('create_vm', [
      'agent-legacy',
      stemcell,
      {},
      network('local'),
      [],
      {},
    ]);
    vms.push(legacy);
    assert.match(legacy, new RegExp(`^vm-${UUID.source}$`), 'a single-host config keeps plain IDs');
    assert.equal(await cpi.call('has_vm', [legacy]), true);
    assert.equal(await cpi.call('has_vm', [`${legacy}@local`]), true);
    const legacyDisk = await single.call<string>('create_disk', [32, {}, legacy]);
    disks.push(legacyDisk);
    assert.equal(await cpi.call('attach_disk', [legacy, legacyDisk]), `/warden-cpi-dev/${legacyDisk}`);
    assert.deepEqual(await cpi.call('get_disks', [legacy]), [`${legacyDisk}@local`]);
    await cpi.call('detach_disk', [legacy, legacyDisk]);
    await cpi.call('delete_vm', [legacy]);
    await cpi.call('delete_disk', [legacyDisk]);

    const vmId = `vm-${randomUUID()}`;
    expectError(
      await cpi.run('has_vm', [`${vmId}@mars`]),
      'Bosh::Clouds::CloudError',
      /Docker host 'mars'/,
      /hosts: local, remote/,
    );
    expectError(
      await cpi.run('has_disk', [`disk-${randomUUID()}@mars`]),
      'Bosh::Clouds::CloudError',
      /'mars'/,
    );
    expectError(await cpi.run('delete_vm', [`${vmId}@mars`]), 'Bosh::Clouds::CloudError', /'mars'/);
    for (const malformed of [
      `${vmId}@`,
      `${vmId}@../../etc`,
      `${vmId}@a/b`,
      `../${vmId}@local`,
      `${vmId}@local@remote`,
    ])
      assert.equal(await cpi.call('has_vm', [malformed]), false, malformed);
    expectError(await cpi.run('delete_disk', [`disk-${randomUUID()}@x/..`]), 'Bosh::Clouds::DiskNotFound');
  });

  test('a TLS failure names the host and the cause', async () => {
    const tls = {
      ca: engine.otherCaFile,
      certificate: engine.tlsFiles.certificate,
      private_key: engine.tlsFiles.privateKey,
    };
    const wrongCa = config({ hosts: hosts({ remote: { tls } }) });
    const run = await wrongCa.run('has_vm', [onRemote]);
    expectError(
      run,
      'Bosh::Clouds::CloudError',
      /Docker host 'remote' \(tcp:\/\/127\.0\.0\.1:\d+\) is unreachable: TLS failure/,
    );
    assert.equal(await wrongCa.call('has_vm', [onLocal]), true, 'the other host is unaffected');
  });

  test('while one engine is down only the calls that need it fail; after its restart all is back', async () => {
    await engine.stop();
    assert.equal(await cpi.call('has_vm', [onLocal]), true);
    const down = expectError(
      await cpi.run('has_vm', [onRemote]),
      'Bosh::Clouds::CloudError',
      /Docker host 'remote' \(tcp:\/\/127\.0\.0\.1:\d+\) is unreachable: connection refused/,
    );
    assert.ok(down);
    assert.equal((await cpi.run('has_vm', [onRemote])).response.error?.ok_to_retry, true);
    expectError(await cpi.run('has_disk', [disk]), 'Bosh::Clouds::CloudError', /'remote'/);
    expectError(
      await cpi.run('create_vm', ['agent-down', stemcell, { host: 'remote' }, network('remote'), [], {}]),
      'Bosh::Clouds::VMCreationFailed',
      /'remote'.*connection refused/,
    );
    const placed = await createVm(cpi, 'local', {});
    assert.match(placed.cid, /@local$/, 'placement passes over the stopped engine');
    assert.match(placed.log, /remote: Docker host 'remote' .* is unreachable: connection refused/);
    await cpi.call('delete_vm', [placed.cid]);

    // A stemcell uploaded now reaches the local engine only; the upload still succeeds.
    const upload = await cpi.run('create_stemcell', [stemcellPath, {}]);
    assert.equal(upload.response.error, null, JSON.stringify(upload.response.error));
    const late = upload.response.result as string;
    assert.match(
      upload.response.log,
      /Stemcell .* is not on Docker host 'remote' .*copies it from a host that has it/,
    );
    assert.ok(imageOn('local', late));
    expectError(await cpi.run('delete_stemcell', [late]), 'Bosh::Clouds::CloudError', /'remote'/);
    assert.ok(!imageOn('local', late), 'the reachable host was cleaned before the error');
    // Upload it again for the rest of the test.
    const lateAgain = await cpi.call<string>('create_stemcell', [stemcellPath, {}]);

    await engine.start();
    assert.equal(
      existsSync('/sys/class/net/docker0'),
      hadDocker0,
      "the restart left the shared engine's bridge alone",
    );
    assert.equal(await cpi.call('has_vm', [onRemote]), true);
    assert.equal(await cpi.call('has_disk', [disk]), true);
    // The VM container came back with the engine, and its disk (a mount on the host) with it.
    const c = containerOn('remote', onRemote);
    for (let i = 0; i < 50 && engine.docker('inspect', c, '--format', '{{.State.Running}}') !== 'true'; i++)
      await new Promise((r) => setTimeout(r, 200));
    assert.equal(
      engine.docker('exec', c, 'sh', '-c', `md5sum /warden-cpi-dev/${localPart(disk)}/data | cut -d' ' -f1`),
      checksum,
    );

    // The stemcell the engine missed is copied over from the local engine on first use.
    assert.ok(!imageOn('remote', lateAgain));
    const saved = stemcell;
    stemcell = lateAgain;
    const lazy = await createVm(cpi, 'remote', { host: 'remote' });
    stemcell = saved;
    assert.match(
      lazy.log,
      /Copying stemcell image bosh-stemcell:\S+ .* from Docker host 'local' to 'remote'/,
    );
    assert.ok(imageOn('remote', lateAgain));
    assert.equal(
      engine.docker(
        'image',
        'inspect',
        `bosh-stemcell:${lateAgain}`,
        '--format',
        '{{index .Config.Labels "io.bosh.cpi.stemcell"}}',
      ),
      lateAgain,
      'the copy keeps its labels',
    );
    assert.ok(containerOn('remote', lazy.cid));
    await cpi.call('delete_vm', [lazy.cid]);
    await cpi.call('delete_stemcell', [lateAgain]);
    assert.ok(
      !imageOn('local', lateAgain) && !imageOn('remote', lateAgain),
      'delete_stemcell removes it everywhere',
    );
  });

  test('deleting VMs and disks goes to their host', async () => {
    await cpi.call('detach_disk', [onRemote, disk]);
    for (const vm of [onRemote, onLocal]) await cpi.call('delete_vm', [vm]);
    for (const d of disks) await cpi.run('delete_disk', [d]);
    assert.equal(await cpi.call('has_disk', [disk]), false);
    assert.equal(containerOn('remote', onRemote), '');
    await cpi.call('delete_stemcell', [stemcell]);
    assert.ok(!imageOn('local', stemcell) && !imageOn('remote', stemcell));
  });
});
