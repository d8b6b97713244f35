/**
 * Real-agent boot check on one Docker host, run by hand (root; needs the stemcells and a Docker CLI):
 *
 *   npx tsx e2e/agent-boot.ts --stemcell <tgz> [--stemcell <tgz> …] [--docker-host tcp://IP:2376 --tls-dir DIR]
 *                             [--runs N] [--no-nested]
 *
 * For each stemcell (runit or systemd; stemcell.MF's cloud_properties go to create_stemcell as the CLI
 * passes them): create_vm through bin/cpi with the create-env HTTPS mbus and the agent port published on
 * the Docker host, then the time until the real agent answers `ping`; `ram` enforced from outside (an
 * allocation above it is killed); a nested container (the host's runc bound into the VM) whose memory
 * limit kills an allocation above it; delete_vm's time and how the container ended (a systemd VM must
 * halt, exit 0, not be killed after the stop timeout). --tls-dir holds ca.pem, cert.pem, key.pem.
 * The last line is `N passed, N failed`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Cpi, writeConfig } from '../test/support/cpi.ts';
import { removeDataDir } from '../test/support/docker.ts';
import { agentEnv, DYNAMIC_NETWORKS } from './lib/agent-env.ts';
import { agentMbusCertificate } from './lib/certs.ts';
import { freePort } from './lib/util.ts';

interface Options {
  stemcells: string[];
  dockerHost: string;
  tlsDir?: string;
  runs: number;
  nested: boolean;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = { stemcells: [], dockerHost: 'unix:///var/run/docker.sock', runs: 1, nested: true };
  for (let i = 0; i < argv.length; i++) {
    const value = () => argv[++i] ?? fail(`${argv[i - 1]} needs a value`);
    const arg = argv[i];
    if (arg === '--stemcell') opts.stemcells.push(resolve(value()));
    else if (arg === '--docker-host') opts.dockerHost = value();
    else if (arg === '--tls-dir') opts.tlsDir = resolve(value());
    else if (arg === '--runs') opts.runs = Number(value());
    else if (arg === '--no-nested') opts.nested = false;
    else fail(`unknown argument ${arg}`);
  }
  if (opts.stemcells.length === 0) fail('give at least one --stemcell <tgz>');
  return opts;
}

function fail(message: string): never {
  throw new Error(message);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const MIB = 1048576;
const ALLOCATE = (bytes: number) => `head -c ${bytes} /dev/zero | tail > /dev/null; echo "exit=$?"`;

/** POST {"method": <method>} to the agent's HTTPS mbus; its `value`, or undefined without an answer. */
function agentValue(
  host: string,
  port: number,
  ca: string,
  method: string,
  args: unknown[] = [],
): Promise<unknown> {
  const body = JSON.stringify({ method, arguments: args, reply_to: 'e2e' });
  return new Promise((ok) => {
    const req = request(
      {
        host,
        port,
        path: '/agent',
        method: 'POST',
        ca,
        servername: 'agent',
        auth: 'mbus:mbus-password',
        timeout: 3000,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => {
          try {
            ok(res.statusCode === 200 ? (JSON.parse(text) as { value?: unknown }).value : undefined);
          } catch {
            ok(undefined);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy());
    req.on('error', () => ok(undefined));
    req.end(body);
  });
}

const ping = async (host: string, port: number, ca: string) =>
  (await agentValue(host, port, ca, 'ping')) === 'pong';

/** stemcell.MF's cloud_properties (flat `key: value` lines, as the stemcell builders write them). */
function stemcellCloudProperties(manifest: string): Record<string, string> {
  const props: Record<string, string> = {};
  const block = /^cloud_properties:\n((?:[ \t]+.*\n?)*)/m.exec(manifest)?.[1] ?? '';
  for (const line of block.split('\n')) {
    const m = /^\s+([\w-]+):\s*'?([^'\n]*)'?\s*$/.exec(line);
    if (m?.[1] && m[2] !== undefined) props[m[1]] = m[2];
  }
  return props;
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const work = mkdtempSync(join(tmpdir(), 'e2e-agent-boot-'));
  const tcp = /^tcp:\/\/([^:/]+):\d+$/.exec(opts.dockerHost);
  const cliArgs = tcp
    ? [
        '-H',
        opts.dockerHost,
        '--tlsverify',
        `--tlscacert=${opts.tlsDir}/ca.pem`,
        `--tlscert=${opts.tlsDir}/cert.pem`,
        `--tlskey=${opts.tlsDir}/key.pem`,
      ]
    : ['-H', opts.dockerHost];
  const docker = (...a: string[]) =>
    execFileSync('docker', [...cliArgs, ...a], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  const exec = (c: string, script: string, input = '') => {
    const r = spawnSync('docker', [...cliArgs, 'exec', '-i', c, '/bin/sh', '-c', script], {
      input,
      encoding: 'utf8',
      timeout: 300_000,
    });
    return { code: r.status ?? -1, out: `${r.stdout ?? ''}`.trim(), err: `${r.stderr ?? ''}`.trim() };
  };
  const agentHost = tcp?.[1] ?? '127.0.0.1';
  const director = `e2e-boot-${randomUUID().slice(0, 8)}`;
  const dataDir = `/var/lib/bosh-cpi-e2e-${director}`;
  const cert = await agentMbusCertificate(work);
  const configPath = writeConfig({
    docker: {
      host: opts.dockerHost,
      ...(tcp
        ? {
            tls: {
              ca: `${opts.tlsDir}/ca.pem`,
              certificate: `${opts.tlsDir}/cert.pem`,
              private_key: `${opts.tlsDir}/key.pem`,
            },
          }
        : {}),
      data_dir: dataDir,
      allowed_bind_sources: ['/usr/sbin/runc'],
    },
    agent: { mbus: 'https://mbus:mbus-password@0.0.0.0:6868', ntp: [] },
  });
  const cpi = new Cpi(configPath, 2);
  cpi.context = { director_uuid: director };
  const engine = docker(
    'info',
    '--format',
    'cgroup v{{.CgroupVersion}} ({{.CgroupDriver}}), {{.ServerVersion}}',
  );
  let passed = 0;
  let failed = 0;
  const check = (ok: boolean, what: string) => {
    console.log(`${ok ? 'PASS' : 'FAIL'} ${what}`);
    if (ok) passed++;
    else failed++;
  };
  console.log(`host ${opts.dockerHost}: ${engine}`);

  const runcSpec = (script: string) => {
    const dir = mkdtempSync(join(work, 'spec-'));
    execFileSync('runc', ['spec'], { cwd: dir });
    const spec = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    spec.process.terminal = false;
    spec.process.args = ['/bin/sh', '-c', script];
    spec.root = { path: 'rootfs', readonly: false };
    spec.linux.resources = { ...spec.linux.resources, memory: { limit: 64 * MIB, swap: 64 * MIB } };
    return JSON.stringify(spec);
  };

  try {
    for (const tgz of opts.stemcells) {
      const dir = mkdtempSync(join(work, 'stemcell-'));
      execFileSync('tar', ['-xzf', tgz, '-C', dir, 'stemcell.MF', 'image']);
      const props = stemcellCloudProperties(readFileSync(join(dir, 'stemcell.MF'), 'utf8'));
      const name = props.name ?? tgz;
      let t0 = performance.now();
      const stemcell = await cpi.call<string>('create_stemcell', [join(dir, 'image'), props]);
      console.log(
        `${name}: create_stemcell ${((performance.now() - t0) / 1000).toFixed(1)} s (init ${props.init ?? 'runit'})`,
      );
      for (let run = 1; run <= opts.runs; run++) {
        const port = await freePort();
        const env = agentEnv(cert);
        const cloudProps = {
          ram: 1024,
          ports: [`${port}:6868/tcp`],
          ...(opts.nested ? { binds: ['/usr/sbin/runc:/usr/sbin/runc:ro'] } : {}),
        };
        const networks = DYNAMIC_NETWORKS;
        t0 = performance.now();
        const [vm] = await cpi.call<[string]>('create_vm', [
          `agent-${run}`,
          stemcell,
          cloudProps,
          networks,
          [],
          env,
        ]);
        const created = performance.now() - t0;
        let pong = false;
        while (!pong && performance.now() - t0 < 300_000) {
          pong = await ping(agentHost, port, cert.ca);
          if (!pong) await sleep(250);
        }
        const bootToPing = performance.now() - t0;
        const c = docker('ps', '-aq', '--no-trunc', '--filter', `label=io.bosh.cpi.vm=${vm}`);
        check(
          pong,
          `${name} run ${run}: agent ping ${(bootToPing / 1000).toFixed(1)} s after create_vm began (create_vm ${(created / 1000).toFixed(1)} s)`,
        );
        if (!pong) console.log(exec(c, 'tail -20 /var/vcap/bosh/log/current').out);
        if (pong) {
          // The settings name no address for the dynamic network: the agent fills in its default
          // route's when it applies a spec (what the Director sends after create_vm).
          const spec = {
            deployment: 'e2e',
            name: 'boot',
            index: 0,
            id: 'boot-0',
            job: { name: 'boot', templates: [] },
            packages: {},
            networks: { default: { type: 'dynamic', default: ['dns', 'gateway'] } },
            configuration_hash: 'e2e',
          };
          let task = (await agentValue(agentHost, port, cert.ca, 'apply', [spec])) as
            | { agent_task_id?: string }
            | undefined;
          for (let i = 0; i < 60 && task?.agent_task_id; i++) {
            await sleep(500);
            const next = await agentValue(agentHost, port, cert.ca, 'get_task', [task.agent_task_id]);
            task =
              (next as { agent_task_id?: string; state?: string })?.state === 'running' ? task : undefined;
          }
          const state = (await agentValue(agentHost, port, cert.ca, 'get_state')) as
            | { networks?: Record<string, { ip?: string }> }
            | undefined;
          const engineIp = docker(
            'inspect',
            c,
            '--format',
            '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}',
          );
          const agentIp = state?.networks?.default?.ip;
          check(
            agentIp === engineIp,
            `${name} run ${run}: the agent reports the dynamic network's address the engine gave (${agentIp} = ${engineIp})`,
          );
        }
        if (run === 1) {
          check(exec(c, ALLOCATE(256 * MIB)).out === 'exit=0', `${name}: 256 MiB fit in the 1024 MiB VM`);
          check(
            exec(c, ALLOCATE(1500 * MIB)).out === 'exit=137',
            `${name}: 1500 MiB killed in the 1024 MiB VM (ram from outside)`,
          );
          if (props.init === 'systemd') {
            const state = exec(c, 'systemctl is-system-running; systemctl --failed --no-legend --plain');
            check(
              /^running/.test(state.out),
              `${name}: systemd is running (${state.out.replace(/\n/g, '; ')})`,
            );
            const gettys = exec(c, 'ps -eo comm | grep -c getty').out;
            check(gettys === '0', `${name}: no getty processes (${gettys})`);
            const services = exec(c, 'systemctl is-active bosh-agent monit monit-proxy').out.replace(
              /\n/g,
              ' ',
            );
            check(
              services === 'active active active',
              `${name}: agent, monit, monit-proxy active (${services})`,
            );
          }
          if (opts.nested) {
            const inner = [
              '{ grep ":memory:" /proc/self/cgroup || grep "^0::" /proc/self/cgroup; }',
              // v2: the nested container's own cgroup file (without a cgroup namespace it sees the VM's root)
              'cat /sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup)/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes',
              ALLOCATE(16 * MIB),
              ALLOCATE(200 * MIB),
            ].join('; ');
            const bundle = exec(
              c,
              'set -e; rm -rf /nest; mkdir -p /nest/rootfs/bin /nest/rootfs/proc /nest/rootfs/dev /nest/rootfs/sys /nest/rootfs/tmp; ' +
                'for l in $(ldd /bin/busybox | grep -o "/[^ ]*"); do mkdir -p /nest/rootfs$(dirname $l); cp -L $l /nest/rootfs$l; done; ' +
                'cp /bin/busybox /nest/rootfs/bin/; for a in sh head tail cat grep sed; do ln -s busybox /nest/rootfs/bin/$a; done; ' +
                'cat > /nest/config.json',
              runcSpec(inner),
            );
            const r = exec(c, 'cd /nest && runc run --no-pivot --no-new-keyring nested-1');
            const lines = r.out.split('\n');
            check(
              bundle.code === 0 &&
                r.code === 0 &&
                /nested-1$/.test(lines[0] ?? '') &&
                Number(lines[1]) === 64 * MIB &&
                lines[2] === 'exit=0' &&
                lines[3] === 'exit=137',
              `${name}: nested runc container with a 64 MiB limit: 16 MiB fit, 200 MiB killed (${[bundle.err, r.out, r.err].filter(Boolean).join(' | ')})`,
            );
          }
        }
        // The container's end on the engine's clock, from just before delete_vm: a systemd VM halts (exit 0)
        // before the engine's 10 s stop timeout would kill it (137).
        const since = docker('info', '--format', '{{.SystemTime}}');
        t0 = performance.now();
        await cpi.call('delete_vm', [vm]);
        const deleted = performance.now() - t0;
        const [dieNano, exit] = docker(
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
        const stopMs = (Number(dieNano) - Date.parse(since) * 1e6) / 1e6;
        const stoppedCleanly = props.init !== 'systemd' || (exit === '0' && stopMs < 10_000);
        check(
          stoppedCleanly,
          `${name} run ${run}: container ended ${(stopMs / 1000).toFixed(1)} s after delete_vm began (exit code ${exit ?? '?'}); delete_vm ${(deleted / 1000).toFixed(1)} s`,
        );
      }
      await cpi.call('delete_stemcell', [stemcell]);
    }
  } finally {
    if (!tcp) removeDataDir(dataDir);
    rmSync(work, { recursive: true, force: true });
    rmSync(configPath, { force: true });
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
