import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { LOCAL_BLOBSTORE, settledLeftovers } from './agent-env.ts';
import { agentCall, httpGet } from './agent-https.ts';
import type { E2eBackend, MadeIds, Subnet } from './backends.ts';
import type { Report } from './report.ts';
import { TEST_JOB, TEST_PORT } from './test-release.ts';
import { run, runOk, seconds, waitFor } from './util.ts';

export interface CreateEnvInputs {
  bosh: string;
  stemcell: string;
  cpiRelease: string;
  testRelease: string;
  work: string;
  env: NodeJS.ProcessEnv;
}

/** The create-env manifest (JSON is YAML): one VM on a manual network, the test job, a persistent disk. */
export function manifest(
  backend: E2eBackend,
  subnet: Subnet,
  inputs: CreateEnvInputs,
): Record<string, unknown> {
  const ip = subnet.ip(10);
  return {
    name: `e2e-${backend.name}`,
    releases: [
      { name: 'bosh-ts-cpi', url: `file://${inputs.cpiRelease}` },
      { name: TEST_JOB, url: `file://${inputs.testRelease}` },
    ],
    resource_pools: [
      {
        name: 'vms',
        network: 'default',
        stemcell: { url: `file://${inputs.stemcell}` },
        cloud_properties: backend.vmCloudProperties(),
        env: { bosh: { password: '*', mbus: { cert: '((mbus))' }, blobstores: [LOCAL_BLOBSTORE] } },
      },
    ],
    disk_pools: [{ name: 'disks', disk_size: 1024, cloud_properties: {} }],
    networks: [
      {
        name: 'default',
        type: 'manual',
        subnets: [
          {
            range: subnet.cidr,
            gateway: subnet.gateway,
            dns: [],
            static: [ip],
            cloud_properties: backend.networkCloudProperties(),
          },
        ],
      },
    ],
    instance_groups: [
      {
        name: 'e2e',
        instances: 1,
        jobs: [{ name: TEST_JOB, release: TEST_JOB }],
        resource_pool: 'vms',
        persistent_disk_pool: 'disks',
        networks: [{ name: 'default', static_ips: [ip] }],
        properties: {},
      },
    ],
    cloud_provider: {
      template: { name: backend.cpiJob, release: 'bosh-ts-cpi' },
      mbus: `https://mbus:((mbus_password))@${ip}:6868`,
      cert: { ca: '((mbus.ca))' },
      properties: {
        ...backend.cpiProperties(),
        agent: { mbus: 'https://mbus:((mbus_password))@0.0.0.0:6868' },
      },
    },
    variables: [
      { name: 'mbus_password', type: 'password' },
      { name: 'default_ca', type: 'certificate', options: { is_ca: true, common_name: 'e2e-ca' } },
      {
        name: 'mbus',
        type: 'certificate',
        options: { ca: 'default_ca', common_name: ip, alternative_names: [ip] },
      },
    ],
  };
}

interface DeploymentState {
  director_id?: string;
  current_vm_cid?: string;
  disks?: Array<{ cid: string }>;
  stemcells?: Array<{ cid: string }>;
}

/** Every create-env step and check, in order; failures are recorded, and the deployment is always deleted. */
export async function runCreateEnv(
  report: Report,
  backend: E2eBackend,
  subnet: Subnet,
  inputs: CreateEnvInputs,
  made: MadeIds,
): Promise<void> {
  const manifestPath = join(inputs.work, 'manifest.yml');
  const statePath = join(inputs.work, 'state.json');
  const credsPath = join(inputs.work, 'creds.yml');
  const logPath = join(inputs.work, 'bosh.log');
  writeFileSync(manifestPath, JSON.stringify(manifest(backend, subnet, inputs), null, 2));
  const ip = subnet.ip(10);

  const bosh = async (label: string, args: string[]) => {
    appendFileSync(logPath, `\n===== ${label}: bosh ${args.join(' ')}\n`);
    const r = await run(inputs.bosh, args, {
      env: inputs.env,
      cwd: inputs.work,
      timeoutMs: 60 * 60_000,
    });
    appendFileSync(logPath, `${r.stdout}${r.stderr}`);
    if (r.code !== 0)
      throw new Error(
        `bosh ${args[0]} exited ${r.code} after ${seconds(r.ms)}; last output:\n${r.stdout.split('\n').slice(-25).join('\n')}${r.stderr.slice(-1500)}\n(full log: ${logPath})`,
      );
    return r.stdout;
  };
  const createEnvArgs = ['create-env', manifestPath, '--state', statePath, '--vars-store', credsPath, '-n'];
  const state = (): DeploymentState =>
    existsSync(statePath) ? (JSON.parse(readFileSync(statePath, 'utf8')) as DeploymentState) : {};
  const remember = () => {
    const s = state();
    if (s.director_id) made.directorUuid = s.director_id;
    if (s.current_vm_cid) made.vms.add(s.current_vm_cid);
    for (const d of s.disks ?? []) made.disks.add(d.cid);
    for (const st of s.stemcells ?? []) made.stemcells.add(st.cid);
  };
  const credential = async (path: string) =>
    (await runOk(inputs.bosh, ['int', credsPath, '--path', path], { env: inputs.env })).trim();
  const agent = async () => ({
    url: `https://mbus:${await credential('/mbus_password')}@${ip}:6868`,
    ca: await credential('/mbus/ca'),
  });
  const status = async () => {
    const text = await httpGet(`http://${ip}:${TEST_PORT}/cgi-bin/status`);
    return Object.fromEntries(
      text
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
  };

  let marker = '';
  let firstVm = '';
  let incarnation = '';
  const deployedChecks = async (when: string) => {
    const endpoint = await agent();
    await report.check(`${when}: agent answers ping over the HTTPS mbus (generated CA)`, async () => {
      const pong = await waitFor('agent ping', 60_000, async () =>
        (await agentCall(endpoint, 'ping')) === 'pong' ? true : undefined,
      );
      return pong ? '' : undefined;
    });
    await report.check(`${when}: get_state says the job is running`, async () => {
      const value = (await waitFor('job_state running', 120_000, async () => {
        const s = (await agentCall(endpoint, 'get_state')) as { job_state?: string };
        return s.job_state === 'running' ? s : undefined;
      })) as { agent_id?: string; vm?: { name?: string } };
      return `agent ${value.agent_id}, vm ${value.vm?.name}`;
    });
    const page = await report.check(`${when}: the job serves its status page`, async () => {
      await waitFor('the status page', 60_000, async () => status());
    });
    if (!page) return;
    const s = await status();
    await report.check(`${when}: its package was compiled on the VM`, async () => {
      if (!s.compiled?.startsWith('compiled on ')) throw new Error(`status says compiled=${s.compiled}`);
      if (s.compiled.includes(`compiled on ${hostname()} `))
        throw new Error(`compiled here, not on the VM: ${s.compiled}`);
      return s.compiled;
    });
    await report.check(`${when}: the persistent disk is mounted at /var/vcap/store`, async () => {
      if (!s.store) throw new Error('nothing is mounted at /var/vcap/store');
      return s.store;
    });
    await report.check(
      `${when}: the marker on the persistent disk is ${marker ? 'still there' : 'written'}`,
      async () => {
        if (!s.marker) throw new Error('no marker on /var/vcap/store');
        if (marker && s.marker !== marker) throw new Error(`marker changed: ${marker} -> ${s.marker}`);
        marker = s.marker;
        return marker;
      },
    );
  };

  try {
    const deployed = await report.step(`${backend.name}: bosh create-env (first deploy)`, async () => {
      try {
        return await bosh('create-env', createEnvArgs);
      } catch (e) {
        const vm = state().current_vm_cid;
        const errors = vm ? await backend.agentErrors(vm).catch((x) => `(${x})`) : '(no VM)';
        throw new Error(`${(e as Error).message}\nthe agent's last errors:\n${errors}`);
      }
    });
    remember();
    if (deployed) {
      firstVm = state().current_vm_cid ?? '';
      await deployedChecks('deploy');
      incarnation = await backend.vmIncarnation(firstVm).catch(() => '');

      await report.step(`${backend.name}: bosh create-env again (no changes)`, () =>
        bosh('create-env again', createEnvArgs),
      );
      remember();
      await report.check('again: the same VM, not restarted', async () => {
        const vm = state().current_vm_cid;
        if (vm !== firstVm) throw new Error(`VM changed: ${firstVm} -> ${vm}`);
        const now = await backend.vmIncarnation(firstVm);
        if (now !== incarnation) throw new Error(`VM restarted: ${incarnation} -> ${now}`);
      });
      await deployedChecks('again');

      const recreated = await report.step(`${backend.name}: bosh create-env --recreate`, () =>
        bosh('recreate', [...createEnvArgs, '--recreate']),
      );
      remember();
      if (recreated) {
        await report.check('recreate: a new VM, the same disk', async () => {
          const s = state();
          if (!s.current_vm_cid || s.current_vm_cid === firstVm)
            throw new Error(`VM not recreated: ${s.current_vm_cid}`);
          if ((s.disks ?? []).length !== 1) throw new Error(`disks in state: ${JSON.stringify(s.disks)}`);
          return `${firstVm} -> ${s.current_vm_cid}`;
        });
        await deployedChecks('recreate');
      }
    }
  } finally {
    const deleted = await report.step(`${backend.name}: bosh delete-env`, () =>
      bosh('delete-env', ['delete-env', manifestPath, '--state', statePath, '--vars-store', credsPath, '-n']),
    );
    if (deleted)
      await report.check('delete-env: the state names no VM, disk or stemcell', async () => {
        const s = state();
        if (s.current_vm_cid || (s.disks ?? []).length || (s.stemcells ?? []).length)
          throw new Error(`state still has ${JSON.stringify(s)}`);
      });
    await report.check(
      `delete-env leaves nothing behind (${[...made.vms, ...made.disks, ...made.stemcells].join(', ')})`,
      async () => {
        const left = await settledLeftovers(backend, made);
        if (left.length) throw new Error(`left behind:\n${left.join('\n')}`);
      },
    );
  }
}
