import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { createTar } from '../../src/backends/docker/engine/tar.ts';
import { buildStemcell } from '../../test/support/stemcell.ts';
import type { Bench } from '../lib/context.ts';
import { must } from '../lib/cpi.ts';
import { timed } from '../lib/engine.ts';
import { type Summary, summarize } from '../lib/stats.ts';

export interface MethodRow {
  method: string;
  /** What the raw side does, in words. */
  raw: string;
  cpi: Summary;
  rawMs: Summary | undefined;
  note?: string;
}

class Recorder {
  private readonly cpi = new Map<string, number[]>();
  private readonly raw = new Map<string, number[]>();
  private readonly what = new Map<string, string>();
  readonly notes = new Map<string, string>();

  addCpi(method: string, ms: number): void {
    this.cpi.set(method, [...(this.cpi.get(method) ?? []), ms]);
  }
  addRaw(method: string, what: string, ms: number): void {
    this.what.set(method, what);
    this.raw.set(method, [...(this.raw.get(method) ?? []), ms]);
  }
  rows(): MethodRow[] {
    const methods = [...new Set([...this.cpi.keys(), ...this.raw.keys()])];
    return methods.map((method) => {
      const raw = this.raw.get(method);
      return {
        method,
        raw: this.what.get(method) ?? '—',
        cpi: summarize(this.cpi.get(method) ?? []),
        rawMs: raw ? summarize(raw) : undefined,
        ...(this.notes.has(method) ? { note: this.notes.get(method) } : {}),
      };
    });
  }
}

const START_COMMAND = [
  '/bin/sh',
  '-c',
  'umount /etc/hosts /etc/hostname 2>/dev/null; mkdir -p /var/vcap/store /var/vcap/data/sys; rm -rf /var/vcap/data/sys/run; exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /usr/sbin/runsvdir-start',
];

/** The raw counterpart of create_vm: the same image, binds, capabilities, restart policy and network. */
export async function rawCreateVm(
  bench: Bench,
  image: string,
  ip: string,
  settings?: Buffer,
): Promise<{ id: string; name: string; volume: string; putMs: number }> {
  const name = `bench-raw-${randomUUID()}`;
  const volume = `${name}-ephemeral`;
  const labels = {
    'io.bosh.cpi': 'bench-raw',
    'io.bosh.cpi.director': bench.directorUuid,
    'io.bosh.bench.raw': name,
  };
  bench.rawNames.add(name);
  await bench.engine.ok('POST', '/volumes/create', { Name: volume, Labels: labels });
  const created = await bench.engine.ok<{ Id: string }>('POST', `/containers/create?name=${name}`, {
    Image: image,
    Hostname: name.slice(0, 63),
    Entrypoint: START_COMMAND,
    Cmd: [],
    Labels: labels,
    ExposedPorts: {},
    HostConfig: {
      Binds: [`${bench.dataDir}/mounts/${name}:/warden-cpi-dev:rslave`, `${volume}:/var/vcap/data`],
      Privileged: false,
      CapAdd: ['SYS_ADMIN', 'NET_ADMIN', 'SYS_PTRACE'],
      SecurityOpt: [],
      RestartPolicy: { Name: 'unless-stopped' },
      PortBindings: {},
      NetworkMode: bench.network.name,
    },
    NetworkingConfig: { EndpointsConfig: { [bench.network.name]: { IPAMConfig: { IPv4Address: ip } } } },
  });
  // The stand-in agent traps SIGTERM only once it has settings (as in the CPI's VMs): reboot
  // benchmarks need them, written before start like create_vm does (and timed apart).
  const put = settings
    ? await timed(() => bench.engine.putArchive(created.Id, '/var/vcap/bosh', settings))
    : { ms: 0 };
  await bench.engine.ok('POST', `/containers/${created.Id}/start`, undefined, [304]);
  return { id: created.Id, name, volume, putMs: put.ms };
}

export async function rawDeleteVm(bench: Bench, vm: { id: string; volume: string }): Promise<void> {
  await bench.engine.ok('DELETE', `/containers/${vm.id}?force=1`, undefined, [404]);
  await bench.engine.ok('DELETE', `/volumes/${vm.volume}`, undefined, [404]);
}

/** `docker import` done by curl straight into the API (no docker CLI in between), streaming the file. */
function rawImport(bench: Bench, path: string, tag: string): number {
  const q = new URLSearchParams({ fromSrc: '-', repo: 'bosh-bench-raw', tag });
  for (const label of [
    `io.bosh.cpi=bench-raw`,
    `io.bosh.cpi.director=${bench.directorUuid}`,
    'io.bosh.cpi.created-at=x',
    'io.bosh.stemcell.name=bench',
  ])
    q.append('changes', `LABEL ${label}`);
  const url = `http://localhost/v${bench.engine.version}/images/create?${q}`;
  const started = performance.now();
  const res = spawnSync(
    'curl',
    [
      '-sS',
      '--fail',
      '--unix-socket',
      bench.engine.socketPath,
      '-X',
      'POST',
      '-H',
      'Content-Type: application/x-tar',
      '-T',
      path,
      url,
    ],
    { encoding: 'utf8', maxBuffer: 64 << 20 },
  );
  const ms = performance.now() - started;
  if (res.status !== 0 || /"error"/.test(res.stdout))
    throw new Error(`raw import failed: ${res.stderr}${res.stdout}`);
  return ms;
}

export interface StemcellResult {
  rows: MethodRow[];
  imageBytes: number;
  /** Small stemcell kept for the VM benchmarks. */
  smallStemcellCid: string;
  smallImagePath: string;
  bigImagePath: string;
}

/** create_stemcell / delete_stemcell against curl streaming the same file into POST /images/create. */
export async function stemcellMethods(bench: Bench, log: (s: string) => void): Promise<StemcellResult> {
  const rec = new Recorder();
  log(`building a stemcell with ${bench.opts.paddingMiB} MiB of incompressible filler…`);
  const big = buildStemcell(join(bench.tmp, 'big'), { paddingMiB: bench.opts.paddingMiB });
  const small = buildStemcell(join(bench.tmp, 'small'));
  const mib = (big.bytes / 1048576).toFixed(0);
  const props = { name: 'bosh-bench', version: '1', os: 'busybox' };
  for (let i = 0; i < bench.opts.stemcellReps; i++) {
    bench.checkInterrupted();
    const steps = [
      async () => {
        const tag = `r${i}-${bench.id}`;
        rec.addRaw(
          'create_stemcell',
          `curl -T (streamed) → POST /images/create?fromSrc=- (${mib} MiB gz)`,
          rawImport(bench, big.imagePath, tag),
        );
        const del = await timed(() => bench.engine.ok('DELETE', `/images/bosh-bench-raw:${tag}`));
        rec.addRaw('delete_stemcell', 'DELETE /images/{ref}', del.ms);
      },
      async () => {
        const created = must(
          'create_stemcell',
          bench.cpi.callSync<string>('create_stemcell', [big.imagePath, props, { tags: {} }]),
        );
        rec.addCpi('create_stemcell', created.ms);
        rec.addCpi(
          'delete_stemcell',
          must('delete_stemcell', bench.cpi.callSync('delete_stemcell', [created.result])).ms,
        );
      },
    ];
    if (i % 2 === 1) steps.reverse();
    for (const step of steps) await step();
    log(`  create_stemcell rep ${i + 1}/${bench.opts.stemcellReps}`);
  }
  const kept = must(
    'create_stemcell',
    bench.cpi.callSync<string>('create_stemcell', [small.imagePath, props, { tags: {} }]),
  );
  return {
    rows: rec.rows(),
    imageBytes: big.bytes,
    smallStemcellCid: kept.result,
    smallImagePath: small.imagePath,
    bigImagePath: big.imagePath,
  };
}

export const SETTINGS_TAR = createTar([
  {
    name: 'warden-cpi-agent-env.json',
    type: 'file',
    mode: 0o600,
    content: Buffer.from('{"agent_id":"raw"}'),
  },
]);

const METADATA = (vmCid: string) => ({
  director: 'bench',
  deployment: 'bench',
  instance_group: 'web',
  job: 'web',
  index: '0',
  id: vmCid.slice(3, 39),
  name: `web/${vmCid.slice(3, 39)}`,
  created_at: new Date().toISOString(),
});

/** create_vm, has_vm, set_vm_metadata, reboot_vm, delete_vm, calculate_vm_cloud_properties. */
export async function vmMethods(
  bench: Bench,
  stemcellCid: string,
  log: (s: string) => void,
): Promise<MethodRow[]> {
  const rec = new Recorder();
  const image = `bosh-stemcell:${stemcellCid}`;
  const filter = (label: string) => encodeURIComponent(JSON.stringify({ label: [label] }));
  // One VM first, untimed: the first VM of a data_dir prepares it (shared mount), which later ones skip.
  const first = bench.createVmSync(stemcellCid);
  must('delete_vm', bench.cpi.callSync('delete_vm', [first.vmCid]));
  for (let i = 0; i < bench.opts.reps; i++) {
    bench.checkInterrupted();
    const steps = [
      async () => {
        const c = await timed(() => rawCreateVm(bench, image, bench.nextIp(), SETTINGS_TAR));
        const vm = c.value;
        rec.addRaw(
          'create_vm',
          'volume create + container create + start (same image, binds, network)',
          c.ms - vm.putMs,
        );
        rec.addRaw(
          '(settings PUT)',
          'PUT /containers/{id}/archive before start: create_vm needs it, raw create_vm excludes it',
          vm.putMs,
        );
        const has = await timed(() =>
          bench.engine.ok('GET', `/containers/json?all=1&filters=${filter(`io.bosh.bench.raw=${vm.name}`)}`),
        );
        rec.addRaw('has_vm', 'GET /containers/json (label filter)', has.ms);
        const tar = createTar([
          {
            name: 'cpi-metadata.json',
            type: 'file',
            mode: 0o644,
            content: Buffer.from(JSON.stringify(METADATA(`vm-${randomUUID()}`))),
          },
        ]);
        const meta = await timed(() =>
          Promise.all([
            bench.engine.ok('POST', `/containers/${vm.id}/rename?name=bench_web_0_${randomUUID()}`),
            bench.engine.putArchive(vm.id, '/var/vcap/bosh', tar),
          ]),
        );
        rec.addRaw('set_vm_metadata', 'rename ∥ PUT archive', meta.ms);
        const reboot = await timed(() => bench.engine.ok('POST', `/containers/${vm.id}/restart?t=30`));
        rec.addRaw('reboot_vm', 'POST /containers/{id}/restart?t=30', reboot.ms);
        const del = await timed(() => rawDeleteVm(bench, vm));
        rec.addRaw('delete_vm', 'container rm -f + volume rm', del.ms);
      },
      async () => {
        const { ms, vmCid } = bench.createVmSync(stemcellCid);
        rec.addCpi('create_vm', ms);
        rec.addCpi('has_vm', must('has_vm', bench.cpi.callSync('has_vm', [vmCid])).ms);
        rec.addCpi(
          'set_vm_metadata',
          must('set_vm_metadata', bench.cpi.callSync('set_vm_metadata', [vmCid, METADATA(vmCid)])).ms,
        );
        rec.addCpi('reboot_vm', must('reboot_vm', bench.cpi.callSync('reboot_vm', [vmCid])).ms);
        rec.addCpi('delete_vm', must('delete_vm', bench.cpi.callSync('delete_vm', [vmCid])).ms);
        rec.addCpi(
          'calculate_vm_cloud_properties',
          must(
            'calc',
            bench.cpi.callSync('calculate_vm_cloud_properties', [
              { cpu: 2, ram: 4096, ephemeral_disk_size: 10240 },
            ]),
          ).ms,
        );
      },
    ];
    if (i % 2 === 1) steps.reverse();
    for (const step of steps) await step();
    if ((i + 1) % 5 === 0 || i + 1 === bench.opts.reps) log(`  VM methods rep ${i + 1}/${bench.opts.reps}`);
  }
  rec.notes.set('calculate_vm_cloud_properties', 'no backend work: compare with info');
  return rec.rows();
}

export interface DiskResult {
  rows: MethodRow[];
  /** attach/detach left the VM's container running, never restarted. */
  vmUntouched: boolean;
  vmState: { before: string; after: string };
}

const DISK_MIB = 1024;

/** Disk methods on one running VM, against the same host commands run directly in the host's mount namespace. */
export async function diskMethods(
  bench: Bench,
  stemcellCid: string,
  log: (s: string) => void,
): Promise<DiskResult> {
  const rec = new Recorder();
  const { vmCid } = bench.createVmSync(stemcellCid);
  const [vm] = await bench.engine.ok<Array<{ Id: string }>>(
    'GET',
    `/containers/json?all=1&filters=${encodeURIComponent(JSON.stringify({ label: [`io.bosh.cpi.vm=${vmCid}`] }))}`,
  );
  if (!vm) throw new Error(`VM ${vmCid} has no container`);
  const state = async () => {
    const i = await bench.engine.ok<{
      State: { StartedAt: string; Running: boolean; Pid: number };
      RestartCount: number;
    }>('GET', `/containers/${vm.Id}/json`);
    return `running=${i.State.Running} pid=${i.State.Pid} started=${i.State.StartedAt} restarts=${i.RestartCount}`;
  };
  const before = await state();
  const h = bench.host;
  const raw = `${bench.dataDir}/raw`;
  h.sh('mkdir -p "$1/disks" "$1/snapshots" "$1/mnt/vm"', [raw]);
  const meta = JSON.stringify({ bosh: { deployment: 'bench' }, updated_at: new Date().toISOString() });
  for (let i = 0; i < bench.opts.reps; i++) {
    bench.checkInterrupted();
    const steps = [
      () => {
        const d = `${raw}/disks/d${i}`;
        const img = `${d}/disk.img`;
        const mp = `${raw}/mnt/vm/d${i}`;
        const snap = `${raw}/snapshots/s${i}`;
        const add = (m: string, what: string, ms: number) => rec.addRaw(m, what, ms);
        add(
          'create_disk',
          'sh: mkdir, truncate, mkfs.ext4 (lazy init), write metadata',
          h.sh(
            'mkdir "$1" && truncate -s "$2M" "$1/disk.img" && mkfs.ext4 -q -F -m 0 -E lazy_itable_init=1,lazy_journal_init=1 "$1/disk.img" && printf %s "$3" > "$1/metadata.json"',
            [d, String(DISK_MIB), meta],
          ),
        );
        add(
          'attach_disk',
          'sh: mkdir + mount -o loop,noatime',
          h.sh('mkdir -p "$2" && mount -o loop,noatime "$1" "$2"', [img, mp]),
        );
        add(
          'get_disks',
          'sh: mountpoint -q over the VM mount dir',
          h.sh('for m in "$1"/*; do [ -d "$m" ] && mountpoint -q "$m" && echo "$m"; done; true', [
            `${raw}/mnt/vm`,
          ]),
        );
        add('has_disk', 'sh: test -f', h.sh('test -f "$1"', [img]));
        add(
          'set_disk_metadata',
          'sh: write + mv',
          h.sh('printf %s "$2" > "$1.new" && mv "$1.new" "$1"', [`${d}/metadata.json`, meta]),
        );
        add(
          'snapshot_disk',
          'sh: fsfreeze -f, cp --sparse=always, fsfreeze -u',
          h.sh('mkdir "$3" && fsfreeze -f "$2" && cp --sparse=always "$1" "$3/disk.img"; fsfreeze -u "$2"', [
            img,
            mp,
            snap,
          ]),
        );
        add('delete_snapshot', 'sh: rm -rf', h.sh('rm -rf "$1"', [snap]));
        add('detach_disk', 'sh: umount + rmdir', h.sh('umount "$1" && rmdir "$1"', [mp]));
        add(
          'resize_disk',
          'sh: cp --sparse, truncate, e2fsck -f, resize2fs, mv',
          h.sh(
            'cp --sparse=always "$1" "$1.w" && truncate -s "$2M" "$1.w" && { e2fsck -f -p "$1.w" >/dev/null 2>&1 || [ $? -le 1 ]; } && resize2fs "$1.w" >/dev/null 2>&1 && mv "$1.w" "$1"',
            [img, String(DISK_MIB + 16)],
          ),
        );
        add('delete_disk', 'sh: rm -rf', h.sh('rm -rf "$1"', [d]));
      },
      () => {
        const c = must('create_disk', bench.cpi.callSync<string>('create_disk', [DISK_MIB, {}, vmCid]));
        rec.addCpi('create_disk', c.ms);
        const disk = c.result;
        const call = (method: string, args: unknown[]) => {
          const r = must(method, bench.cpi.callSync(method, args));
          rec.addCpi(method, r.ms);
          return r.result;
        };
        call('attach_disk', [vmCid, disk]);
        call('get_disks', [vmCid]);
        call('has_disk', [disk]);
        call('set_disk_metadata', [disk, { deployment: 'bench', instance_group: 'web' }]);
        const snap = call('snapshot_disk', [disk, { deployment: 'bench' }]);
        call('delete_snapshot', [snap]);
        call('detach_disk', [vmCid, disk]);
        call('resize_disk', [disk, DISK_MIB + 16]);
        call('delete_disk', [disk]);
      },
    ];
    if (i % 2 === 1) steps.reverse();
    for (const step of steps) step();
    if ((i + 1) % 5 === 0 || i + 1 === bench.opts.reps) log(`  disk methods rep ${i + 1}/${bench.opts.reps}`);
  }
  const after = await state();
  must('delete_vm', bench.cpi.callSync('delete_vm', [vmCid]));
  rec.notes.set('snapshot_disk', `${DISK_MIB} MiB ext4, attached (frozen during the copy)`);
  rec.notes.set('attach_disk', 'VM running; disk appears through mount propagation');
  return { rows: rec.rows(), vmUntouched: before === after, vmState: { before, after } };
}
