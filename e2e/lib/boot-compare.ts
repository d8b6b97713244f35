import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentEnv, manualNetworks } from './agent-env.ts';
import { agentCall } from './agent-https.ts';
import type { E2eBackend, MadeIds, Subnet } from './backends.ts';
import { makeCa, makeCert } from './certs.ts';
import { cpiCall, loadYaml } from './director-mode.ts';
import type { Report } from './report.ts';
import { run, runOk, seconds, waitFor } from './util.ts';

/**
 * Docker: boot-to-ping of the same stemcell and settings through the CPI (create_vm to the first
 * answer on the HTTPS mbus) and by hand (`docker create`, the settings copied in, `docker start`
 * with the start command every Docker CPI uses). Both on a network the suite makes.
 */
export async function runBootCompare(
  report: Report,
  backend: E2eBackend,
  subnet: Subnet,
  inputs: { stemcell: string; work: string; dockerHost: string },
  made: MadeIds,
): Promise<void> {
  const dir = join(inputs.work, 'boot');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const docker = (...args: string[]) => runOk('docker', ['-H', inputs.dockerHost, ...args]);
  const directorUuid = randomUUID();
  made.directorUuid = directorUuid;
  const network = `e2e-boot-${process.pid}`;
  const ip = subnet.ip(30);
  const password = randomUUID();
  const config = join(dir, 'cpi.json');
  let stemcellCid: string | undefined;
  let vmCid: string | undefined;
  let handContainer: string | undefined;
  await docker('network', 'create', '--subnet', subnet.cidr, '--gateway', subnet.gateway, network);
  try {
    const ca = await makeCa(dir, 'mbus-ca');
    const cert = await makeCert(dir, 'mbus', ca, ip, [ip]);
    const agent = { url: `https://mbus:${password}@${ip}:6868`, ca: ca.certificate };
    writeFileSync(
      config,
      JSON.stringify(backend.cpiConfig({ mbus: `https://mbus:${password}@0.0.0.0:6868` })),
      { mode: 0o600 },
    );
    const stemcellDir = join(dir, 'stemcell');
    mkdirSync(stemcellDir);
    await runOk('tar', ['-xzf', inputs.stemcell, '-C', stemcellDir]);
    const mf = loadYaml<{ cloud_properties?: Record<string, unknown> }>(join(stemcellDir, 'stemcell.MF'));
    stemcellCid = (await cpiCall(config, directorUuid, 'create_stemcell', [
      join(stemcellDir, 'image'),
      mf.cloud_properties ?? {},
    ])) as string;
    made.stemcells.add(stemcellCid);
    const env = agentEnv({ ca: ca.certificate, certificate: cert.certificate, private_key: cert.privateKey });
    const networks = manualNetworks(ip, subnet, { name: network });
    const ping = async () => ((await agentCall(agent, 'ping')) === 'pong' ? true : undefined);

    let settings = '';
    let image = '';
    await report.step('boot: create_vm through bin/cpi to the first HTTPS mbus ping', async () => {
      const started = Date.now();
      const result = (await cpiCall(config, directorUuid, 'create_vm', [
        `e2e-${randomUUID()}`,
        stemcellCid,
        {},
        networks,
        [],
        env,
      ])) as [string];
      vmCid = result[0];
      made.vms.add(vmCid);
      await waitFor('the agent', 120_000, ping, 200);
      const ms = Date.now() - started;
      const container = (await docker('ps', '-q', '--filter', `label=io.bosh.cpi.vm=${vmCid}`)).trim();
      settings = await docker('exec', container, 'cat', '/var/vcap/bosh/warden-cpi-agent-env.json');
      image = (await docker('inspect', container, '--format', '{{.Config.Image}}')).trim();
      return `${seconds(ms)} after create_vm started`;
    });
    if (vmCid) {
      const deleted = vmCid;
      await cpiCall(config, directorUuid, 'delete_vm', [deleted]);
      vmCid = undefined;
    }
    if (!settings) return;
    await report.step(
      'boot: by hand (docker create, settings copied in, docker start) to the first ping',
      async () => {
        const settingsFile = join(dir, 'warden-cpi-agent-env.json');
        writeFileSync(settingsFile, settings, { mode: 0o600 });
        const started = Date.now();
        handContainer = (
          await docker(
            'create',
            '--network',
            network,
            '--ip',
            ip,
            '--cap-add',
            'SYS_ADMIN',
            '--cap-add',
            'NET_ADMIN',
            '--entrypoint',
            '/bin/sh',
            image,
            '-c',
            'umount /etc/resolv.conf /etc/hosts /etc/hostname; mkdir -p /var/vcap/data/sys /var/vcap/store; exec env -i /usr/sbin/runsvdir-start',
          )
        ).trim();
        await docker('cp', settingsFile, `${handContainer}:/var/vcap/bosh/warden-cpi-agent-env.json`);
        await docker('start', handContainer);
        await waitFor('the hand-made agent', 120_000, ping, 200);
        return `${seconds(Date.now() - started)} after docker create`;
      },
    );
  } finally {
    if (handContainer) await run('docker', ['-H', inputs.dockerHost, 'rm', '-f', handContainer]);
    if (vmCid) await cpiCall(config, directorUuid, 'delete_vm', [vmCid]).catch(() => {});
    if (stemcellCid) await cpiCall(config, directorUuid, 'delete_stemcell', [stemcellCid]).catch(() => {});
    await run('docker', ['-H', inputs.dockerHost, 'network', 'rm', network]);
    await report.check('boot: nothing left behind', async () => {
      const left = await backend.leftovers(made);
      if (left.length) throw new Error(`left behind:\n${left.join('\n')}`);
    });
  }
}
