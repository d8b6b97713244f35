import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensure } from '../lib/assert.ts';
import type { CpiRun } from '../lib/cpi.ts';
import type { Suite } from '../lib/env.ts';
import { walk } from '../lib/state.ts';
import { createVm } from '../lib/vm.ts';

/**
 * Needles that reveal a secret, whole or in part: the secret itself, its JSON-escaped form, and
 * every 12-character window of it (a partly redacted key still leaks). 12 random characters
 * never occur by chance in a few MiB of output.
 */
export function needles(secrets: string[], width = 12, step = 2): string[] {
  const out = new Set<string>();
  for (const s of secrets) {
    out.add(s);
    out.add(JSON.stringify(s).slice(1, -1));
    for (const part of s.split('\n')) {
      const body = part.replace(/^-----.*-----$/, '');
      for (let i = 0; i + width <= body.length; i += step) out.add(body.slice(i, i + width));
    }
  }
  return [...out].filter((n) => n.length >= Math.min(width, 8));
}

export function findLeak(text: string, list: string[]): string | undefined {
  for (const n of list) {
    const at = text.indexOf(n);
    if (at >= 0) return `…${text.slice(Math.max(0, at - 60), at + n.length + 20)}…`;
  }
  return undefined;
}

/** The config's shape as far as the broken variants touch it. */
interface MutableConfig {
  cloud: {
    plugin: string;
    properties: Record<string, Record<string, unknown>> & { agent: Record<string, unknown> };
  };
}

function envWithSecrets(suite: Suite): Record<string, unknown> {
  return {
    bosh: {
      password: suite.secrets.envPassword,
      mbus: {
        urls: [`nats://director:${suite.secrets.natsPassword}@127.0.0.1:4222`],
        cert: { ca: 'ca', certificate: 'cert', private_key: suite.secrets.envPrivateKey },
      },
    },
  };
}

/** Calls that tempt a CPI to echo what it was given: failures right next to secrets. */
async function provoke(suite: Suite): Promise<Array<{ name: string; run: CpiRun; planted: string }>> {
  const { cpi } = suite;
  const env = envWithSecrets(suite);
  const out: Array<{ name: string; run: CpiRun; planted: string }> = [];
  const net = () => suite.addresses.spare();
  out.push({
    name: 'create_vm from a missing stemcell, env with secrets',
    run: await cpi.request('create_vm', [
      `agent-${randomUUID()}`,
      `stemcell-${randomUUID()}`,
      {},
      net(),
      [],
      env,
    ]),
    planted: suite.secrets.envPassword,
  });
  out.push({
    name: 'create_vm with invalid cloud_properties, env with secrets',
    run: await cpi.request('create_vm', [
      `agent-${randomUUID()}`,
      suite.stemcellCid,
      { ephemeral_disk: { size: 'big' }, cpu: -1 },
      net(),
      [],
      env,
    ]),
    planted: suite.secrets.envPrivateKey,
  });
  out.push({
    name: 'create_vm with a wrong-typed argument, env with secrets',
    run: await cpi.request('create_vm', [`agent-${randomUUID()}`, suite.stemcellCid, 'bad', net(), [], env]),
    planted: suite.secrets.envPassword,
  });
  // A garbled request: the parser stops right at the secret.
  const text = cpi.requestText('create_vm', [`agent-${randomUUID()}`, suite.stemcellCid, {}, net(), [], env]);
  const pw = suite.secrets.envPassword;
  out.push({
    name: 'garbled create_vm request, the syntax error sits on env.bosh.password',
    run: await cpi.raw(text.replace(JSON.stringify(pw), pw.replace(/^\$6\$/, '')), {
      label: 'garbled create_vm',
    }),
    planted: pw.replace(/^\$6\$/, ''),
  });
  out.push({
    name: 'truncated create_vm request ending inside the private key',
    run: await cpi.raw(text.slice(0, text.indexOf('PRIVATE KEY-----') + 60), {
      label: 'truncated create_vm',
    }),
    planted: suite.secrets.envPrivateKey,
  });
  out.push({
    name: 'cpi-config properties with a secret merged into the context',
    run: await cpi.request('has_vm', [`vm-${randomUUID()}`], {
      context: {
        api_token: suite.secrets.token,
        agent: { mbus: `nats://nats:${suite.secrets.natsPassword}@127.0.0.1:4222` },
      },
    }),
    planted: suite.secrets.token,
  });
  // Broken configs that still hold the secrets.
  const variant = (name: string, mutate: (c: MutableConfig) => void) => {
    const c = structuredClone(suite.config) as unknown as MutableConfig;
    mutate(c);
    const path = join(suite.workDir, `secret-variant-${out.length}.json`);
    writeFileSync(path, JSON.stringify(c), { mode: 0o600 });
    return { name, cpi: cpi.withConfig(path) };
  };
  for (const { name, cpi: broken, planted } of [
    {
      ...variant('config: mbus with an unsupported scheme', (c) => {
        c.cloud.properties.agent.mbus = `ftp://nats:${suite.secrets.natsPassword}@127.0.0.1:21`;
      }),
      planted: suite.secrets.natsPassword,
    },
    {
      ...variant('config: mbus password too short for a URL', (c) => {
        c.cloud.properties.agent.mbus = suite.secrets.natsPassword;
      }),
      planted: suite.secrets.natsPassword,
    },
    {
      ...variant('config: unknown plugin', (c) => {
        c.cloud.plugin = 'nonexistent';
      }),
      planted: suite.secrets.privateKey,
    },
    {
      ...variant('config: engine URL with credentials (local, refused)', (c) => {
        c.cloud.properties[c.cloud.plugin] = {
          ...(c.cloud.properties[c.cloud.plugin] ?? {}),
          host: `tcp://admin:${suite.secrets.token}@127.0.0.1:9`,
        };
      }),
      planted: suite.secrets.token,
    },
    {
      ...variant('config: TLS key given inline with unusable CA', (c) => {
        c.cloud.properties[c.cloud.plugin] = {
          ...(c.cloud.properties[c.cloud.plugin] ?? {}),
          host: 'tcp://127.0.0.1:9',
          tls: { ca: 'no-such-ca', certificate: 'no-such-cert', private_key: suite.secrets.privateKey },
        };
      }),
      planted: suite.secrets.privateKey,
    },
    {
      ...variant('config: blobstore options of the wrong type', (c) => {
        c.cloud.properties.agent.blobstore = {
          provider: 42,
          options: { password: suite.secrets.blobstorePassword },
        };
      }),
      planted: suite.secrets.blobstorePassword,
    },
  ]) {
    out.push({ name, run: await broken.request('has_vm', [`vm-${randomUUID()}`]), planted });
  }
  // A config file that no longer parses, broken right at the password.
  const garbled = JSON.stringify(suite.config).replace(
    JSON.stringify(`nats://nats:${suite.secrets.natsPassword}@`).slice(0, -1),
    `nats://nats:${suite.secrets.natsPassword}@`.replace('nats://nats:', ''),
  );
  const garbledPath = join(suite.workDir, 'secret-variant-garbled.json');
  writeFileSync(garbledPath, garbled, { mode: 0o600 });
  out.push({
    name: 'config: a file that does not parse, the syntax error on the mbus password',
    run: await cpi.withConfig(garbledPath).request('has_vm', [`vm-${randomUUID()}`]),
    planted: suite.secrets.natsPassword,
  });
  return out;
}

export async function runSecrets(suite: Suite): Promise<void> {
  const { reporter, cpi, docker } = suite;
  const list = needles(suite.secrets.all);
  const c = (name: string, fn: () => unknown) => reporter.check('secrets', name, fn);

  const provoked = await provoke(suite);
  for (const p of provoked) {
    await c(
      `provocation: ${p.name}: a well-formed answer without the secret (not even 6 characters of it)`,
      () => {
        ensure(p.run.framing.length === 0, `framing: ${p.run.framing.join('; ')}`);
        const text = `${p.run.stdout}\n${p.run.stderr}`;
        const body = p.planted.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
        const leak = findLeak(text, needles([body], 6, 1)) ?? findLeak(text, list);
        ensure(!leak, `leaked: ${leak}`);
      },
    );
  }

  // A VM with secrets in env, a disk, metadata: then look at everything the engine shows.
  const vm = await createVm(cpi, suite.stemcellCid, suite.addresses, { env: envWithSecrets(suite) });
  const disk = await cpi.call<string>('create_disk', [16, {}, vm.cid]);
  await cpi.call('attach_disk', [vm.cid, disk]);
  await cpi.call('set_vm_metadata', [vm.cid, { deployment: 'conformance', name: 'secrets/0', index: '0' }]);
  await cpi.call('set_disk_metadata', [disk, { deployment: 'conformance', instance_group: 'secrets' }]);
  try {
    if (suite.isDocker) {
      await c(
        'docker inspect of every container, volume, network and image of the run shows no secret',
        async () => {
          const texts: Array<[string, string]> = [];
          const directors = suite.scope.directors;
          for (const ct of await docker.containers()) {
            const labels = ct.Labels ?? {};
            if (
              !directors.has(labels['io.bosh.cpi.director'] ?? '\u0000') &&
              !suite.scope.stemcellImageIds.has(ct.ImageID)
            )
              continue;
            texts.push([`container ${ct.Names[0]}`, JSON.stringify(await docker.inspectContainer(ct.Id))]);
          }
          for (const v of await docker.volumes())
            if (v.Labels && 'io.bosh.cpi' in v.Labels) texts.push([`volume ${v.Name}`, JSON.stringify(v)]);
          for (const n of await docker.networks())
            if (n.Labels && 'io.bosh.cpi' in n.Labels) texts.push([`network ${n.Name}`, JSON.stringify(n)]);
          for (const i of await docker.images())
            if (suite.scope.stemcellImageIds.has(i.Id))
              texts.push([`image ${i.Id.slice(7, 19)}`, JSON.stringify(i)]);
          ensure(
            texts.some(([what]) => what.startsWith('container')),
            'found no container of the run to inspect',
          );
          for (const [what, text] of texts) {
            const leak = findLeak(text, list);
            ensure(!leak, `${what}: ${leak}`);
          }
        },
      );
    }
    await c('no world-readable file under data_dir holds a secret', () => {
      const entries = walk(suite.dataDir, 8);
      // The file's own o+r bit counts, whatever its directories allow today: a chmod of data_dir
      // (or a backup that keeps modes) would expose it.
      const offenders: string[] = [];
      for (const e of entries) {
        if (e.type !== 'f' || !(e.mode & 0o004) || e.size > 8 * 1024 * 1024) continue;
        const text = readFileSync(join(suite.dataDir, e.path)).toString('latin1');
        const leak = findLeak(text, list);
        if (leak) offenders.push(`${e.path} (mode ${e.mode.toString(8)}): ${leak}`);
      }
      ensure(offenders.length === 0, offenders.join('\n'));
    });
  } finally {
    await cpi.request('detach_disk', [vm.cid, disk]);
    await cpi.request('delete_vm', [vm.cid]);
    await cpi.request('delete_disk', [disk]);
  }

  // Everything the CPI printed during the whole run.
  const runs = cpi.allRuns;
  await c(`no secret on stderr of any of the ${runs.length} CPI runs`, () => {
    const bad = runs.map((r) => [r.label, findLeak(r.stderr, list)] as const).filter(([, l]) => l);
    ensure(
      bad.length === 0,
      bad
        .slice(0, 5)
        .map(([l, leak]) => `${l}: ${leak}`)
        .join('\n'),
    );
  });
  await c(`no secret in the log field of any of the ${runs.length} responses`, () => {
    const bad = runs
      .map((r) => [r.label, findLeak(r.response?.log ?? '', list)] as const)
      .filter(([, l]) => l);
    ensure(
      bad.length === 0,
      bad
        .slice(0, 5)
        .map(([l, leak]) => `${l}: ${leak}`)
        .join('\n'),
    );
  });
  await c(`no secret anywhere else on stdout (error messages, results) of the ${runs.length} runs`, () => {
    const bad = runs.map((r) => [r.label, findLeak(r.stdout, list)] as const).filter(([, l]) => l);
    ensure(
      bad.length === 0,
      bad
        .slice(0, 5)
        .map(([l, leak]) => `${l}: ${leak}`)
        .join('\n'),
    );
  });
}
