import { randomUUID } from 'node:crypto';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agentEnv } from '../e2e/lib/agent-env.ts';
import { agentCall } from '../e2e/lib/agent-https.ts';
import { makeCa, makeCert } from '../e2e/lib/certs.ts';
import { loadYaml } from '../e2e/lib/director-mode.ts';
import { runOk, sleep, waitFor } from '../e2e/lib/util.ts';
import { consoleText, qemuConfig, TimedCpi } from '../test/qemu/support/host.ts';
import { type QemuBenchSetup, roundIp, type Samples, vmMachine } from './lib/qemu.ts';

/**
 * The real bosh-agent under the QEMU backend, create-env style: create_vm from an OpenStack-style
 * qcow2 stemcell with an HTTPS mbus certificate and a blobstore in `env`, then the agent's `ping`
 * over HTTPS at <vm ip>:6868 (verified with the CA the bench made), then reboot_vm and ping again.
 */
export async function agentBootRounds(
  setup: QemuBenchSetup,
  stemcellTgz: string,
  cpuModel?: string,
): Promise<Samples> {
  const { dataDir, bridge, work } = setup;
  const ips = Array.from({ length: setup.rounds }, (_, round) => roundIp(bridge, round));
  const ca = await makeCa(work, 'mbus-ca');
  const cert = await makeCert(work, 'mbus', ca, 'agent', ips);
  const env = agentEnv({ ca: ca.certificate, certificate: cert.certificate, private_key: cert.privateKey });
  const password = randomUUID();
  const qemuProps = cpuModel
    ? { ...setup.qemuProps, qemu_binary: cpuWrapper(work, cpuModel) }
    : setup.qemuProps;
  const cpi = new TimedCpi(
    qemuConfig(dataDir, bridge, qemuProps, { mbus: `https://mbus:${password}@0.0.0.0:6868` }),
  );
  const pong = (ip: string) => async () =>
    (await agentCall({ url: `https://mbus:${password}@${ip}:6868`, ca: ca.certificate }, 'ping')) === 'pong'
      ? true
      : undefined;

  const stemcellDir = join(work, 'stemcell');
  mkdirSync(stemcellDir);
  await runOk('tar', ['-xzf', stemcellTgz, '-C', stemcellDir]);
  const manifest = loadYaml<{ cloud_properties?: object }>(join(stemcellDir, 'stemcell.MF'));
  const stemcellCid = await cpi.call<string>('create_stemcell', [
    join(stemcellDir, 'image'),
    manifest.cloud_properties ?? {},
  ]);
  const bootToPing: number[] = [];
  const createCall: number[] = [];
  const rebootToPing: number[] = [];
  const rebootCall: number[] = [];
  const bootToKernel: number[] = [];
  const rebootToKernel: number[] = [];
  for (const [round, ip] of ips.entries()) {
    const networks = {
      default: {
        type: 'manual',
        ip,
        netmask: '255.255.255.0',
        gateway: bridge.hostIp,
        dns: [],
        default: ['dns', 'gateway'],
        cloud_properties: {},
      },
    };
    const started = performance.now();
    const [vm] = await cpi.call<[string]>('create_vm', [
      `bench-${round}`,
      stemcellCid,
      { cpu: 1, ram: 1024 },
      networks,
      [],
      env,
    ]);
    createCall.push(performance.now() - started);
    if (round === 0) console.log(`machine: ${vmMachine(dataDir, vm)}`);
    bootToKernel.push((await kernelStart(dataDir, vm, 1)) - started);
    await waitFor(`the agent of ${vm} at ${ip}`, 600_000, pong(ip), 200);
    bootToPing.push(performance.now() - started);
    console.log(`round ${round + 1}: boot to ping ${Math.round(performance.now() - started)} ms`);

    // reboot_vm returns once QEMU reset the guest; a ping counts only after the new kernel's banner.
    const rebooted = performance.now();
    await cpi.call('reboot_vm', [vm]);
    rebootCall.push(performance.now() - rebooted);
    rebootToKernel.push((await kernelStart(dataDir, vm, 2)) - rebooted);
    await waitFor(`the agent of ${vm} after reboot_vm`, 600_000, pong(ip), 200);
    rebootToPing.push(performance.now() - rebooted);
    console.log(`round ${round + 1}: reboot to ping ${Math.round(performance.now() - rebooted)} ms`);
    await cpi.call('delete_vm', [vm]);
  }
  await cpi.call('delete_stemcell', [stemcellCid]);
  return {
    'create_vm call to the first ping': bootToPing,
    'create_vm call': createCall,
    'create_vm call to the kernel banner': bootToKernel,
    'reboot_vm call to a ping from the new boot': rebootToPing,
    'reboot_vm call': rebootCall,
    'reboot_vm call to the new kernel banner': rebootToKernel,
  };
}

/**
 * When the guest's Linux kernel printed its banner for the `boot`-th time on the serial console
 * (console.log keeps every boot), polled every 100 ms.
 */
async function kernelStart(dataDir: string, vm: string, boot: number): Promise<number> {
  const deadline = Date.now() + 600_000;
  while ((consoleText(dataDir, vm).match(/Linux version \d/g)?.length ?? 0) < boot) {
    if (Date.now() > deadline) throw new Error(`no kernel banner #${boot} from ${vm} within 600 s`);
    await sleep(100);
  }
  return performance.now();
}

/**
 * A qemu_binary (an existing operator option) that runs QEMU with another `-cpu` model than the
 * CPI's own per-accelerator choice: for measuring models without changing the CPI.
 */
function cpuWrapper(work: string, model: string): string {
  if (!/^[A-Za-z0-9_.,=+-]+$/.test(model)) throw new Error(`unexpected CPU model '${model}'`);
  const path = join(work, `qemu-cpu-${model}`);
  writeFileSync(
    path,
    `#!/bin/sh\nprev=\nfor a do\n  shift\n  if [ "$prev" = -cpu ]; then set -- "$@" '${model}'; else set -- "$@" "$a"; fi\n  prev=$a\ndone\nexec qemu-system-x86_64 "$@"\n`,
  );
  chmodSync(path, 0o755);
  return path;
}
