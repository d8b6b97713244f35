import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ensure, short } from '../lib/assert.ts';
import type { CpiRun, RequestOptions } from '../lib/cpi.ts';
import type { Suite } from '../lib/env.ts';
import { describeDiff, isEmpty, settledDiff, snapshot, walk } from '../lib/state.ts';

/**
 * Requests through which a manifest author (cloud_properties), a cpi-config (the request context)
 * or an uploaded stemcell would reach the host: each must be refused and change nothing (engine
 * resources, data_dir, mounts, loop devices), and nothing it names may run.
 */
const CATEGORY = 'host escape';

interface Escape {
  name: string;
  method: string;
  args: unknown[];
  opts?: RequestOptions;
  /** Error types that count as a refusal; any error when absent. */
  types?: string[];
  /** The refusal must not be retryable (it never becomes allowed by retrying). */
  final?: boolean;
  /** What the message must name (the property), so an unrelated failure does not count. */
  names?: RegExp;
}

/** Removes what a wrongly accepted request made, so the next check starts from the same state. */
async function undo(suite: Suite, e: Escape, result: unknown): Promise<void> {
  const cid = Array.isArray(result) ? result[0] : result;
  if (typeof cid !== 'string') return;
  const method = { create_vm: 'delete_vm', create_disk: 'delete_disk', create_stemcell: 'delete_stemcell' }[
    e.method
  ];
  if (method) await suite.cpi.request(method, [cid], { timeoutMs: 120_000 }).catch(() => undefined);
}

async function refusedWithoutChange(suite: Suite, e: Escape): Promise<void> {
  const { cpi, reporter } = suite;
  await reporter.check(CATEGORY, e.name, async () => {
    const before = await snapshot(suite.scope);
    const canary = JSON.stringify(walk(suite.canaryDir));
    const run: CpiRun = await cpi.request(e.method, e.args, { timeoutMs: 120_000, ...(e.opts ?? {}) });
    const d = await settledDiff(suite.scope, before, 500);
    const error = run.response?.error;
    ensure(run.response, `no response: ${run.framing.join('; ')}`);
    if (!error) await undo(suite, e, run.response.result);
    ensure(error, `accepted: ${short(run.response.result, 200)}`);
    ensure(!e.names || e.names.test(error.message), `refused for another reason: ${error.message}`);
    ensure(!e.types || e.types.includes(error.type), `refused as ${error.type}: ${error.message}`);
    ensure(!e.final || error.ok_to_retry === false, `refused with ok_to_retry true: ${error.message}`);
    ensure(isEmpty(d), () => `changed state:\n${describeDiff(d)}`);
    ensure(JSON.stringify(walk(suite.canaryDir)) === canary, `${suite.canaryDir} (beside data_dir) changed`);
    ensure(!existsSync(suite.pwnedMarker), `${suite.pwnedMarker} appeared: something the request named ran`);
  });
}

/** create_vm with these cloud_properties (or networks). */
function vm(
  suite: Suite,
  name: string,
  cloudProperties: Record<string, unknown>,
  networks?: Record<string, unknown>,
): Escape {
  const property = Object.keys(cloudProperties)[0] ?? 'name';
  return {
    name,
    method: 'create_vm',
    args: [
      `agent-${randomUUID()}`,
      suite.stemcellCid,
      cloudProperties,
      networks ?? suite.addresses.spare(),
      [],
      {},
    ],
    types: ['Bosh::Clouds::VMCreationFailed'],
    final: true,
    names: new RegExp(property),
  };
}

/** A tiny TCP listener: a CPI that connects to a plain-TCP engine it was not allowed to use shows here. */
async function listener(): Promise<{ port: number; connections: () => number; close: () => void }> {
  let count = 0;
  const server = createServer((socket) => {
    count++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return { port, connections: () => count, close: () => server.close() };
}

export async function runHostEscape(suite: Suite): Promise<void> {
  const { reporter, plugin } = suite;
  const section = plugin;
  const escapes: Escape[] = [];

  if (suite.isDocker) {
    escapes.push(
      vm(suite, 'cloud_properties.binds of / (the host root)', { binds: ['/:/host:rw'] }),
      vm(suite, 'cloud_properties.binds of the Docker socket', {
        binds: ['/var/run/docker.sock:/var/run/docker.sock'],
      }),
      vm(suite, 'cloud_properties.binds of data_dir (every VM disk)', { binds: [`${suite.dataDir}:/disks`] }),
      vm(suite, 'cloud_properties.binds of a directory inside data_dir', {
        binds: [`${suite.dataDir}/disks:/disks`],
      }),
      vm(suite, 'cloud_properties.binds climbing out with ..', {
        binds: [`${suite.canaryDir}/../../..:/host`],
      }),
      vm(suite, 'cloud_properties.privileged: true over the operator privileged: false', {
        privileged: true,
      }),
      vm(suite, 'cloud_properties.cap_add of SYS_MODULE', { cap_add: ['SYS_MODULE'] }),
      vm(
        suite,
        "a network naming the engine's host network (host netns, NET_ADMIN)",
        {},
        { default: { type: 'dynamic', cloud_properties: { name: 'host' } } },
      ),
    );
  } else {
    reporter.skip(CATEGORY, 'cloud_properties binds/privileged/cap_add/host network', 'Docker CPIs only');
  }

  // Bounds: never "no limit", never an overflow in a host script.
  escapes.push(
    vm(suite, 'cloud_properties.ram 1e303 (was Memory: null, no limit)', { ram: 1e303 }),
    vm(suite, 'cloud_properties.cpu 1e-12 (was NanoCpus 0, no limit)', { cpu: 1e-12 }),
    vm(suite, 'cloud_properties.cpu 1000000', { cpu: 1_000_000 }),
    vm(suite, 'cloud_properties.ephemeral_disk.size 2^43 MiB (shell arithmetic overflow)', {
      ephemeral_disk: { size: 2 ** 43 },
    }),
    { name: 'create_disk of 2^43 MiB', method: 'create_disk', args: [2 ** 43, {}, null], names: /size/ },
    { name: 'create_disk of 1e303 MiB', method: 'create_disk', args: [1e303, {}, null], names: /size/ },
  );

  // The request context (a cpi-config) names endpoints and credentials, nothing the CPI runs.
  const evil = mkdtempSync(join(suite.workDir, 'escape-'));
  const script = join(evil, 'qemu-system-x86_64');
  writeFileSync(script, `#!/bin/sh\ntouch ${suite.pwnedMarker}\n`);
  chmodSync(script, 0o755);
  const contextEscapes: Array<[string, Record<string, unknown>]> = [
    ['qemu.qemu_binary (executed)', { qemu: { qemu_binary: script, qemu_img_binary: script } }],
    [`${section}.data_dir`, { [section]: { data_dir: suite.canaryDir } }],
    [`${section}.helper_image`, { [section]: { helper_image: 'busybox:latest' } }],
    [`${section}.privileged`, { [section]: { privileged: true } }],
    [`${section}.allowed_bind_sources`, { [section]: { allowed_bind_sources: ['/'] } }],
    [`${section}.start_command`, { [section]: { start_command: ['/bin/sh', '-c', 'sleep 1'] } }],
  ];
  for (const [key, context] of contextEscapes)
    escapes.push({
      name: `request context overriding ${key}`,
      method: 'create_disk',
      args: [16, {}, null],
      opts: { context },
      types: ['Bosh::Clouds::CpiError'],
      names: /context/,
    });

  // Stemcells: the image must be a regular file itself, not a link to one (or to /dev/sda).
  const link = join(evil, 'image');
  symlinkSync(suite.stemcellImage, link);
  escapes.push({
    name: 'create_stemcell of an image that is a symbolic link',
    method: 'create_stemcell',
    args: [link, {}],
  });

  try {
    for (const e of escapes) await refusedWithoutChange(suite, e);
  } finally {
    rmSync(evil, { recursive: true, force: true });
  }

  if (suite.isDocker) {
    // A remote engine without TLS: refused before any connection is made.
    await reporter.check(CATEGORY, 'a tcp:// engine without TLS is refused without connecting', async () => {
      const server = await listener();
      try {
        const config = structuredClone(suite.config) as { cloud: { properties: Record<string, unknown> } };
        const docker = { ...(config.cloud.properties.docker as Record<string, unknown>) };
        docker.host = `tcp://127.0.0.1:${server.port}`;
        delete docker.tls;
        config.cloud.properties.docker = docker;
        const path = join(suite.workDir, 'escape-plain-tcp.json');
        writeFileSync(path, JSON.stringify(config), { mode: 0o600 });
        const error = await suite.cpi.withConfig(path).callError('has_vm', [`vm-${randomUUID()}`]);
        ensure(
          server.connections() === 0,
          `the CPI connected to the plain-TCP engine (${error.type}: ${error.message})`,
        );
        rmSync(path, { force: true });
      } finally {
        server.close();
      }
    });
  }
}
