import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Cpi, writeConfig } from './cpi.ts';
import { removeDataDir } from './docker.ts';
import { buildStemcell } from './stemcell.ts';

/**
 * A Docker host to run the cgroup/init scenarios on: this machine's engine (cgroup v1) or the
 * cgroup v2 VM host (test/cgroup2). `docker` runs the docker CLI against that engine.
 */
export interface CgroupTarget {
  cgroupVersion: 1 | 2;
  /** `docker.*` properties of the CPI config that reach this engine (host, tls, data_dir). */
  dockerProperties: Record<string, unknown>;
  /** The docker CLI's arguments that select this engine (e.g. `-H tcp://… --tlsverify …`). */
  cliArgs: string[];
}

export interface Exec {
  code: number;
  stdout: string;
  stderr: string;
}

/** Paths on the Docker host that give a busybox VM a working runc (Debian's runc and its libraries). */
const RUNC_BINDS = [
  '/usr/sbin/runc:/usr/sbin/runc:ro',
  '/lib/x86_64-linux-gnu:/lib/x86_64-linux-gnu:ro',
  '/lib64:/lib64:ro',
];

/** Above the nested container's limit, below the VM's: only the nested limit can stop it. */
const NESTED_LIMIT = 64 * 1048576;
const ALLOCATE = (bytes: number) => `head -c ${bytes} /dev/zero | tail > /dev/null; echo "exit=$?"`;

/** An OCI bundle config for a nested container: runc's own default spec with a memory limit. */
function nestedSpec(script: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'cpi-runc-spec-'));
  try {
    execFileSync('runc', ['spec'], { cwd: dir });
    const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    spec.process.terminal = false;
    spec.process.args = ['/bin/sh', '-c', script];
    spec.root = { path: 'rootfs', readonly: false };
    spec.linux.resources = { ...spec.linux.resources, memory: { limit: NESTED_LIMIT, swap: NESTED_LIMIT } };
    return JSON.stringify(spec);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export type CgroupScenario = 'namespace' | 'nested' | 'ram' | 'systemd' | 'net_cls';

export function cgroupScenarios(
  hostName: string,
  target: () => CgroupTarget,
  only: CgroupScenario[] = ['namespace', 'nested', 'ram', 'systemd', 'net_cls'],
): void {
  const scenario = (name: CgroupScenario, title: string, body: () => Promise<void>) => {
    if (only.includes(name)) test(title, body);
  };
  const t = () => target();
  const docker = (...args: string[]) =>
    execFileSync('docker', [...t().cliArgs, ...args], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  const exec = (container: string, script: string, input?: string): Exec => {
    const r = spawnSync('docker', [...t().cliArgs, 'exec', '-i', container, '/bin/sh', '-c', script], {
      input: input ?? '',
      encoding: 'utf8',
      timeout: 120_000,
    });
    return { code: r.status ?? -1, stdout: (r.stdout ?? '').trim(), stderr: (r.stderr ?? '').trim() };
  };
  const containerOf = (vmCid: string) =>
    docker('ps', '-aq', '--no-trunc', '--filter', `label=io.bosh.cpi.vm=${vmCid}`).split('\n')[0] ?? '';
  async function waitFor(check: () => boolean, what: string, timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (check()) return;
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.fail(`timed out waiting for ${what}`);
  }

  describe(`cgroups and init on ${hostName}`, () => {
    let cpi: Cpi;
    let configPath: string;
    let work: string;
    let runitStemcell: string;
    let systemdStemcell: string;
    const director = `cgroups-${randomUUID().slice(0, 8)}`;
    const dataDir = `/var/lib/bosh-cpi-test-${director}`;
    const dynamic = { dyn: { type: 'dynamic', dns: [], default: ['dns', 'gateway'], cloud_properties: {} } };

    before(async () => {
      work = mkdtempSync(join(tmpdir(), 'cpi-cgroups-'));
      configPath = writeConfig({
        docker: {
          data_dir: dataDir,
          allowed_bind_sources: RUNC_BINDS.map((b) => b.split(':')[0]),
          ...t().dockerProperties,
        },
        agent: { mbus: 'nats://nats:nats-secret-password@127.0.0.1:4222', ntp: [] },
      });
      cpi = new Cpi(configPath, 2);
      cpi.context = { director_uuid: director };
      const runit = buildStemcell(join(work, 'runit'));
      const systemd = buildStemcell(join(work, 'systemd'), { init: 'systemd' });
      runitStemcell = await cpi.call<string>('create_stemcell', [runit.imagePath, {}]);
      // As the CLI passes stemcell.MF's cloud_properties: `init: systemd` makes every VM boot systemd.
      systemdStemcell = await cpi.call<string>('create_stemcell', [systemd.imagePath, { init: 'systemd' }]);
    });

    after(async () => {
      const label = `label=io.bosh.cpi.director=${director}`;
      const left = docker('ps', '-aq', '--filter', label).split('\n').filter(Boolean);
      if (left.length) spawnSync('docker', [...t().cliArgs, 'rm', '-f', ...left]);
      for (const s of [runitStemcell, systemdStemcell]) if (s) await cpi.call('delete_stemcell', [s]);
      // On a remote host the data dir goes with the host (a throw-away VM).
      if (t().cliArgs.length === 0) removeDataDir(dataDir);
      rmSync(work, { recursive: true, force: true });
      rmSync(configPath, { force: true });
    });

    scenario(
      'namespace',
      'the engine reports the expected cgroup version and every VM gets a private cgroup namespace',
      async () => {
        assert.equal(docker('info', '--format', '{{.CgroupVersion}}'), String(t().cgroupVersion));
        const [vm] = await cpi.call<[string]>('create_vm', ['agent-ns', runitStemcell, {}, dynamic, [], {}]);
        const c = containerOf(vm);
        assert.equal(docker('inspect', c, '--format', '{{.HostConfig.CgroupnsMode}}'), 'private');
        await waitFor(() => exec(c, 'cat /var/vcap/bosh/agent-ready').stdout === 'ready', 'the agent');
        // The VM sees its own cgroup as the root of the hierarchy, and may write below it.
        const own = exec(c, 'cat /proc/1/cgroup').stdout;
        assert.match(own, t().cgroupVersion === 2 ? /^0::\/(init)?$/m : /:memory:\/$/m, own);
        const probe =
          t().cgroupVersion === 2
            ? 'mkdir /sys/fs/cgroup/probe && rmdir /sys/fs/cgroup/probe && echo writable'
            : 'mkdir /sys/fs/cgroup/memory/probe && rmdir /sys/fs/cgroup/memory/probe && echo writable';
        assert.equal(exec(c, probe).stdout, 'writable');
        await cpi.call('delete_vm', [vm]);
      },
    );

    scenario(
      'net_cls',
      'cgroup v1: a VM gets a net_cls hierarchy, and `iptables -m cgroup` in its network namespace matches its class',
      async () => {
        if (t().cgroupVersion === 2) return; // the agent skips its NATS firewall on cgroup v2
        const [vm] = await cpi.call<[string]>('create_vm', [
          'agent-netcls',
          runitStemcell,
          {},
          dynamic,
          [],
          {},
        ]);
        const c = containerOf(vm);
        await waitFor(() => exec(c, 'cat /var/vcap/bosh/agent-ready').stdout === 'ready', 'the agent');
        const mounted = exec(c, 'grep " /sys/fs/cgroup/net_cls" /proc/mounts').stdout;
        assert.match(mounted, /^cgroup \/sys\/fs\/cgroup\/net_cls\S* cgroup rw,.*net_cls/m, mounted);
        // What the agent does: a group with its classid (here a name of the test's own), itself moved in.
        const group = `/sys/fs/cgroup/net_cls/cpi-test-${director}`;
        const classid = 0xb0540002;
        // The rule is in the VM's network namespace (the host's iptables binary run there).
        const pid = docker('inspect', c, '--format', '{{.State.Pid}}');
        const iptables = (...args: string[]) =>
          execFileSync('nsenter', ['-t', pid, '-n', 'iptables', '-w', '-t', 'mangle', ...args], {
            encoding: 'utf8',
          });
        const hostRulesBefore = execFileSync('iptables', ['-w', '-t', 'mangle', '-S'], { encoding: 'utf8' });
        iptables(
          '-A',
          'OUTPUT',
          '-o',
          'lo',
          '-p',
          'tcp',
          '--dport',
          '9',
          '-m',
          'cgroup',
          '--cgroup',
          String(classid),
        );
        const matched = () =>
          Number(
            iptables('-L', 'OUTPUT', '-v', '-x', '-n')
              .split('\n')
              .find((l) => l.includes('cgroup'))
              ?.trim()
              .split(/\s+/)[0],
          );
        try {
          // A connection outside the class: not matched. Inside: matched (the SYN is counted either way it ends).
          exec(c, 'nc -w 1 127.0.0.1 9 </dev/null');
          assert.equal(matched(), 0, 'a process outside the class does not match');
          const inside = exec(
            c,
            `mkdir ${group} && echo ${classid} > ${group}/net_cls.classid && echo $$ > ${group}/cgroup.procs && grep net_cls /proc/self/cgroup && nc -w 1 127.0.0.1 9 </dev/null; true`,
          );
          assert.match(inside.stdout, new RegExp(`net_cls.*:/cpi-test-${director}$`, 'm'), inside.stderr);
          assert.ok(matched() >= 1, 'a process in the class matches');
        } finally {
          exec(c, `rmdir ${group}`);
        }
        assert.equal(
          execFileSync('iptables', ['-w', '-t', 'mangle', '-S'], { encoding: 'utf8' }),
          hostRulesBefore,
          "the host's own rules are untouched",
        );
        assert.doesNotMatch(
          readFileSync('/proc/self/mountinfo', 'utf8'),
          /net_cls/,
          'the host mounts no net_cls',
        );
        await cpi.call('delete_vm', [vm]);
      },
    );

    scenario(
      'nested',
      'a nested container (runc in the VM) runs, and its memory limit kills an allocation above it',
      async () => {
        const [vm] = await cpi.call<[string]>('create_vm', [
          'agent-nested',
          runitStemcell,
          { ram: 512, binds: RUNC_BINDS },
          dynamic,
          [],
          {},
        ]);
        const c = containerOf(vm);
        await waitFor(() => exec(c, 'cat /var/vcap/bosh/agent-ready').stdout === 'ready', 'the agent');
        const inner = [
          t().cgroupVersion === 2 ? 'grep "^0::" /proc/self/cgroup' : 'grep ":memory:" /proc/self/cgroup',
          // v2: its own cgroup's file (without a cgroup namespace of its own it sees the VM's root);
          // v1: runc binds the container's own memory cgroup at /sys/fs/cgroup/memory.
          'cat /sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup)/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes',
          ALLOCATE(16 * 1048576),
          ALLOCATE(200 * 1048576),
        ].join('; ');
        const bundle = exec(
          c,
          'mkdir -p /nest/rootfs/proc /nest/rootfs/dev /nest/rootfs/sys /nest/rootfs/tmp /nest/rootfs/etc && cp -a /bin /nest/rootfs/ && cat > /nest/config.json',
          nestedSpec(inner),
        );
        assert.equal(bundle.code, 0, bundle.stderr);
        // Under the engine's default seccomp profile runc cannot pivot_root nor make a session keyring.
        const run = exec(c, 'cd /nest && runc run --no-pivot --no-new-keyring nested-1');
        assert.equal(run.code, 0, `runc run: ${run.stdout}\n${run.stderr}`);
        const lines = run.stdout.split('\n');
        assert.match(
          lines[0] ?? '',
          /\/nested-1$/,
          `the nested container has a cgroup of its own: ${run.stdout}`,
        );
        assert.equal(
          Number(lines[1]),
          NESTED_LIMIT,
          `its limit is set inside the VM's subtree: ${run.stdout}`,
        );
        assert.equal(lines[2], 'exit=0', `16 MiB fit under the 64 MiB limit: ${run.stdout}`);
        assert.equal(
          lines[3],
          'exit=137',
          `200 MiB are killed by the 64 MiB limit (the VM has 512): ${run.stdout}`,
        );
        await cpi.call('delete_vm', [vm]);
      },
    );

    scenario('ram', '`ram` is enforced on the VM from outside', async () => {
      const [vm] = await cpi.call<[string]>('create_vm', [
        'agent-ram',
        runitStemcell,
        { ram: 128 },
        dynamic,
        [],
        {},
      ]);
      const c = containerOf(vm);
      assert.equal(Number(docker('inspect', c, '--format', '{{.HostConfig.Memory}}')), 128 * 1048576);
      await waitFor(() => exec(c, 'cat /var/vcap/bosh/agent-ready').stdout === 'ready', 'the agent');
      assert.equal(exec(c, ALLOCATE(64 * 1048576)).stdout, 'exit=0');
      assert.equal(exec(c, ALLOCATE(200 * 1048576)).stdout, 'exit=137', '200 MiB in a 128 MiB VM');
      if (t().cgroupVersion === 2) {
        // nsdelegate: the VM may not raise the limit set on its namespace root.
        const raise = exec(c, 'echo max > /sys/fs/cgroup/memory.max');
        assert.notEqual(raise.code, 0, 'the VM cannot raise its own memory.max');
        assert.equal(exec(c, 'cat /sys/fs/cgroup/memory.max').stdout, String(128 * 1048576));
      }
      await cpi.call('delete_vm', [vm]);
    });

    scenario(
      'systemd',
      'a systemd stemcell boots systemd as PID 1 with its cgroups, reboots, and delete_vm halts it within the stop timeout',
      async () => {
        const [vm] = await cpi.call<[string]>('create_vm', [
          'agent-systemd',
          systemdStemcell,
          {},
          dynamic,
          [],
          {},
        ]);
        const c = containerOf(vm);
        assert.equal(docker('inspect', c, '--format', '{{.Config.StopSignal}}'), 'SIGRTMIN+3');
        await waitFor(
          () => exec(c, 'cat /var/vcap/bosh/agent-ready').stdout === 'ready',
          'the agent under systemd',
        );
        assert.equal(exec(c, 'cat /proc/1/comm').stdout, 'systemd');
        assert.match(exec(c, 'tr "\\0" "\\n" < /proc/1/environ').stdout, /^container=docker$/m);
        await waitFor(() => exec(c, 'systemctl is-system-running').stdout === 'running', 'systemd running');
        assert.match(exec(c, 'grep " /run " /proc/mounts').stdout, /^tmpfs \/run tmpfs/);
        // systemd could create the agent's unit cgroup, with the memory controller, in the VM's subtree.
        const pid = exec(c, 'systemctl show -p MainPID --value bosh-agent').stdout;
        const cgroup = exec(c, `cat /proc/${pid}/cgroup`).stdout;
        if (t().cgroupVersion === 2) {
          assert.match(cgroup, /^0::\/system\.slice\/bosh-agent\.service$/m, cgroup);
          const controllers = exec(
            c,
            'cat /sys/fs/cgroup/system.slice/bosh-agent.service/cgroup.controllers',
          );
          assert.match(controllers.stdout, /\bmemory\b/);
        } else {
          assert.match(cgroup, /:memory:\/system\.slice\/bosh-agent\.service$/m, cgroup);
        }
        // reboot_vm restarts the container: systemd halts on its stop signal and boots again.
        await cpi.call('reboot_vm', [vm]);
        await waitFor(
          () => exec(c, 'wc -l < /var/vcap/bosh/boots').stdout === '2',
          'the agent started again',
        );
        await waitFor(
          () => exec(c, 'systemctl is-system-running').stdout === 'running',
          'systemd running again',
        );
        assert.equal(exec(c, 'cat /proc/1/comm').stdout, 'systemd');
        // Measured on the engine's clock: from just before delete_vm to the container's end.
        const since = docker('info', '--format', '{{.SystemTime}}');
        await cpi.call('delete_vm', [vm]);
        const [dieNano, exitCode] = docker(
          'events',
          '--since',
          since,
          '--until',
          docker('info', '--format', '{{.SystemTime}}'),
          '--filter',
          `container=${c}`,
          '--filter',
          'event=die',
          '--format',
          '{{.TimeNano}} {{index .Actor.Attributes "exitCode"}}',
        ).split(' ');
        assert.equal(exitCode, '0', 'systemd halted (exit 0), not killed after the stop timeout');
        const stopMs = (Number(dieNano) - Date.parse(since) * 1e6) / 1e6;
        assert.ok(
          stopMs < 10_000,
          `systemd stopped ${stopMs.toFixed(0)} ms after delete_vm began (stop timeout 10 s)`,
        );
      },
    );
  });
}
