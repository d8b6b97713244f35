import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join, resolve } from 'node:path';
import { agentEnv, manualNetworks, settledLeftovers } from './agent-env.ts';
import type { E2eBackend, MadeIds, Subnet } from './backends.ts';
import { makeCa, makeCert } from './certs.ts';
import { bootByHand, captureVm } from './hand-boot.ts';
import { DirectorNats, NatsClient } from './nats.ts';
import type { Report } from './report.ts';
import { run, runOk, seconds, sleep, waitFor } from './util.ts';

const REPO = resolve(import.meta.dirname, '../..');
const CPI_BIN = join(REPO, 'bin/cpi');

export interface DirectorModeInputs {
  stemcell: string;
  natsServer: string;
  work: string;
  /** QEMU: also boot the same stemcell and settings by hand, to compare boot-to-ping. */
  handBoot?: { dataDir: string; bridge: string };
  /** Docker: the suite makes the network (nats-server listens on its gateway before any VM exists). */
  dockerHost?: string;
}

/** YAML through ruby (which the bosh CLI needs anyway for ERB). */
export function loadYaml<T>(path: string): T {
  const script = 'require "yaml"; require "json"; puts JSON.generate(YAML.safe_load(File.read(ARGV[0])))';
  return JSON.parse(execFileSync('ruby', ['-e', script, path], { encoding: 'utf8' })) as T;
}

/** One CPI call through bin/cpi, as the Director makes it (API v2, director_uuid in the context). */
export async function cpiCall(
  config: string,
  directorUuid: string,
  method: string,
  args: unknown[],
): Promise<unknown> {
  const request = {
    method,
    arguments: args,
    context: { director_uuid: directorUuid, request_id: `cpi-${Date.now() % 1e6}` },
    api_version: 2,
  };
  const r = await run(CPI_BIN, [config], { input: JSON.stringify(request) });
  let response: { result: unknown; error: { type: string; message: string } | null };
  try {
    response = JSON.parse(r.stdout);
  } catch {
    throw new Error(`${method}: no JSON from the CPI (exit ${r.code}): ${r.stdout}${r.stderr.slice(-1500)}`);
  }
  if (response.error) throw new Error(`${method}: ${response.error.type}: ${response.error.message}`);
  return response.result;
}

async function portOpen(host: string, port: number): Promise<boolean> {
  return new Promise((ok) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      ok(true);
    });
    s.once('error', () => ok(false));
  });
}

/**
 * As a Director runs it: a real nats-server with TLS client certificates on a test bridge, a VM made
 * through bin/cpi whose settings carry the nats:// mbus, and the agent answering ping and get_state
 * over NATS to this suite's own client.
 */
export async function runDirectorMode(
  report: Report,
  backend: E2eBackend,
  subnet: Subnet,
  inputs: DirectorModeInputs,
  made: MadeIds,
): Promise<void> {
  const dir = join(inputs.work, 'director');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const directorUuid = randomUUID();
  made.directorUuid = directorUuid;
  const agentId = `e2e-${randomUUID()}`;
  const natsIp = subnet.gateway;
  const natsPort = 14000 + (process.pid % 1000);
  let nats: ChildProcess | undefined;
  let dockerNetwork: string | undefined;
  let vmCid: string | undefined;
  let stemcellCid: string | undefined;
  let client: NatsClient | undefined;
  const config = join(dir, 'cpi.json');
  try {
    let networkProps = backend.networkCloudProperties();
    if (inputs.dockerHost) {
      dockerNetwork = `e2e-nats-${process.pid}`;
      await runOk('docker', [
        '-H',
        inputs.dockerHost,
        'network',
        'create',
        '--subnet',
        subnet.cidr,
        '--gateway',
        subnet.gateway,
        dockerNetwork,
      ]);
      networkProps = { name: dockerNetwork };
    }

    const ca = await makeCa(dir, 'nats-ca');
    const server = await makeCert(dir, 'nats-server', ca, 'default.nats.bosh-internal', [natsIp]);
    const director = await makeCert(dir, 'director', ca, 'director.bosh-internal', []);
    const agentCert = await makeCert(dir, 'agent', ca, `${agentId}.agent.bosh-internal`, []);

    await report.step('director: nats-server with TLS client certificates', async () => {
      const conf = join(dir, 'nats.conf');
      writeFileSync(
        conf,
        `listen: "${natsIp}:${natsPort}"\ntls {\n  cert_file: "${server.certPath}"\n  key_file: "${server.keyPath}"\n  ca_file: "${ca.certPath}"\n  verify: true\n  timeout: 5\n}\n`,
        { mode: 0o600 },
      );
      const log = openSync(join(dir, 'nats.log'), 'a');
      nats = spawn(inputs.natsServer, ['-c', conf], { stdio: ['ignore', log, log] });
      await waitFor('nats-server to listen', 15_000, async () =>
        (await portOpen(natsIp, natsPort)) ? true : undefined,
      );
      client = await NatsClient.connect(natsIp, natsPort, {
        ca: ca.certificate,
        certificate: director.certificate,
        privateKey: director.privateKey,
      });
      return `${natsIp}:${natsPort}`;
    });
    if (!client) return;

    writeFileSync(config, JSON.stringify(backend.cpiConfig({ mbus: `nats://${natsIp}:${natsPort}` })), {
      mode: 0o600,
    });
    const stemcellDir = join(dir, 'stemcell');
    mkdirSync(stemcellDir);
    await runOk('tar', ['-xzf', inputs.stemcell, '-C', stemcellDir]);
    const stemcellMf = loadYaml<{ cloud_properties?: Record<string, unknown> }>(
      join(stemcellDir, 'stemcell.MF'),
    );
    const imported = await report.step('director: create_stemcell through bin/cpi', async () => {
      stemcellCid = (await cpiCall(config, directorUuid, 'create_stemcell', [
        join(stemcellDir, 'image'),
        stemcellMf.cloud_properties ?? {},
      ])) as string;
      made.stemcells.add(stemcellCid);
      return stemcellCid;
    });
    if (!imported || !stemcellCid) return;

    const director_ = new DirectorNats(client);
    const heartbeat = new Promise<string>((ok) =>
      client?.subscribe(`hm.agent.heartbeat.${agentId}`, (data) => ok(data)),
    );
    const ip = subnet.ip(20);
    const env = agentEnv({
      ca: ca.certificate,
      certificate: agentCert.certificate,
      private_key: agentCert.privateKey,
    });
    const networks = manualNetworks(ip, subnet, networkProps);
    let createdAt = 0;
    const created = await report.step('director: create_vm with a nats:// mbus', async () => {
      createdAt = Date.now();
      const result = (await cpiCall(config, directorUuid, 'create_vm', [
        agentId,
        stemcellCid,
        backend.vmCloudProperties(),
        networks,
        [],
        env,
      ])) as [string, unknown];
      vmCid = result[0];
      made.vms.add(vmCid);
      return vmCid;
    });
    if (created) {
      const answered = await report.step(
        'director: create_vm to the first NATS ping answer (boot-to-ping)',
        async () => {
          const bootTimeout = backend.name === 'qemu' ? 600_000 : 120_000;
          try {
            await waitFor('the agent over NATS', bootTimeout, async () =>
              (await director_.call(agentId, 'ping', [], 5_000)) === 'pong' ? true : undefined,
            );
          } catch (e) {
            const log = await backend.agentErrors(vmCid as string).catch((x) => `(no agent log: ${x})`);
            throw new Error(`${(e as Error).message}\nthe agent's last errors:\n${log}`);
          }
          return `${seconds(Date.now() - createdAt)} after create_vm started`;
        },
      );
      if (!answered) {
        report.fail('director: get_state over NATS', 'not run: the agent never answered');
        return;
      }
      await report.check('director: get_state over NATS names the agent and the VM', async () => {
        const state = (await director_.call(agentId, 'get_state', [], 30_000)) as {
          agent_id?: string;
          vm?: { name?: string };
          job_state?: string;
        };
        if (state.agent_id !== agentId) throw new Error(`get_state agent_id ${state.agent_id}`);
        if (state.vm?.name !== vmCid) throw new Error(`get_state vm ${JSON.stringify(state.vm)}`);
        return `job_state ${state.job_state}`;
      });
      await report.check(
        'director: the agent sends heartbeats on hm.agent.heartbeat.<agent_id>',
        async () => {
          const beat = await Promise.race([heartbeat, sleep(90_000).then(() => undefined)]);
          if (!beat) throw new Error('no heartbeat in 90 s');
          return beat.slice(0, 80);
        },
      );
      if (inputs.handBoot) {
        const hand = { ...inputs.handBoot, vmCid: vmCid as string, stemcellCid, work: dir };
        const captured = captureVm(hand);
        const deletedVm = vmCid;
        await report.step('director: delete_vm', () =>
          cpiCall(config, directorUuid, 'delete_vm', [deletedVm]),
        );
        vmCid = undefined;
        await report.step(
          'hand-made boot (plain qemu, same stemcell and settings) to the first NATS ping',
          async () => {
            const started = Date.now();
            const stop = await bootByHand(captured, hand);
            try {
              await waitFor('the hand-booted agent over NATS', 600_000, async () =>
                (await director_.call(agentId, 'ping', [], 5_000)) === 'pong' ? true : undefined,
              );
              return `${seconds(Date.now() - started)} after qemu started`;
            } finally {
              await stop();
            }
          },
        );
      }
    }
  } finally {
    client?.close();
    if (vmCid)
      await report.step('director: delete_vm', () => cpiCall(config, directorUuid, 'delete_vm', [vmCid]));
    if (stemcellCid)
      await report.step('director: delete_stemcell', () =>
        cpiCall(config, directorUuid, 'delete_stemcell', [stemcellCid]),
      );
    if (nats) {
      nats.kill('SIGTERM');
      await new Promise((r) => nats?.once('exit', r));
    }
    if (dockerNetwork && inputs.dockerHost)
      await run('docker', ['-H', inputs.dockerHost, 'network', 'rm', dockerNetwork]);
    if (stemcellCid || vmCid)
      await report.check('director: nothing left behind', async () => {
        const left = await settledLeftovers(backend, made);
        if (left.length) throw new Error(`left behind:\n${left.join('\n')}`);
      });
  }
}
