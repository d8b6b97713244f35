import { ensure, ensureErrorType, short } from '../../lib/assert.ts';
import { KNOWN_ERROR_TYPES } from '../../lib/cpi.ts';
import type { ContractRun } from './context.ts';
import { missing } from './context.ts';

/** info, api_version, unknown and optional methods: what the caller learns before any resource exists. Returns the api_version info reported. */
export async function runEnvelope(t: ContractRun): Promise<number> {
  const { suite, c } = t;
  const { cpi } = suite;
  let maxApi = 1;
  await c(
    'info: {stemcell_formats: string[], api_version >= 2} (Director request, no api_version)',
    async () => {
      const info = await cpi.call<Record<string, unknown>>('info', [], { apiVersion: null });
      ensure(info && typeof info === 'object', `info returned ${short(info)}`);
      ensure(
        Array.isArray(info.stemcell_formats) && info.stemcell_formats.every((f) => typeof f === 'string'),
        `stemcell_formats is ${short(info.stemcell_formats)}`,
      );
      ensure(
        Number.isInteger(info.api_version) && (info.api_version as number) >= 2,
        `api_version is ${short(info.api_version)}; the Director needs >= 2`,
      );
      maxApi = info.api_version as number;
    },
  );
  await c('info: same answer to the CLI (api_version 1 in the request, no context vm)', async () => {
    const info = await cpi.call<Record<string, unknown>>('info', [], { apiVersion: 1 });
    ensure(Array.isArray(info.stemcell_formats), `stemcell_formats is ${short(info.stemcell_formats)}`);
  });
  await c('info: works with the Director environment (PATH only, nothing else)', async () => {
    const run = await cpi.request('info', [], {
      apiVersion: null,
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    });
    ensure(run.response && !run.response.error, `info failed: ${short(run.response?.error ?? run.framing)}`);
  });
  await c('an api_version above the one info reports is refused with a known error', async () => {
    const e = await cpi.callError('has_vm', [missing('vm')], { apiVersion: maxApi + 1 });
    ensure(KNOWN_ERROR_TYPES.has(e.type), `type ${e.type}`);
  });
  await c('an unknown method is Bosh::Clouds::NotImplemented', async () => {
    ensureErrorType(
      await cpi.callError('no_such_method', []),
      'Bosh::Clouds::NotImplemented',
      'no_such_method',
    );
  });
  for (const [method, args, types] of [
    ['current_vm_id', [], ['Bosh::Clouds::NotImplemented']],
    ['ping', [], ['Bosh::Clouds::NotImplemented']],
    [
      'configure_networks',
      [missing('vm'), suite.addresses.network()],
      ['Bosh::Clouds::NotSupported', 'Bosh::Clouds::NotImplemented'],
    ],
  ] as const) {
    await c(`${method} answers ${types.join(' or ')}`, async () => {
      ensureErrorType(
        await cpi.callError(method, [...args], { apiVersion: method === 'configure_networks' ? 1 : 2 }),
        [...types],
        method,
      );
    });
  }
  await c('create_network / delete_network: implemented or NotImplemented', async () => {
    for (const [method, args] of [
      [
        'create_network',
        [
          {
            type: 'manual',
            cloud_properties: {},
            range: `${suite.subnetPrefix}0/24`,
            gateway: `${suite.subnetPrefix}1`,
          },
        ],
      ],
      ['delete_network', [missing('net')]],
    ] as const) {
      const run = await cpi.request(method, [...args]);
      ensure(run.response, `${method}: ${run.framing.join('; ')}`);
      const e = run.response.error;
      if (e && e.type === 'Bosh::Clouds::NotImplemented') continue;
      if (method === 'create_network' && !e) {
        const r = run.response.result;
        ensure(
          Array.isArray(r) && r.length === 3 && typeof r[0] === 'string',
          `create_network returned ${short(r)}, not [id, {range,gateway,reserved}, cloud_properties]`,
        );
        await cpi.call('delete_network', [r[0]]);
      }
      if (method === 'delete_network' && e)
        ensureErrorType(e, 'Bosh::Clouds::NetworkNotFound', 'delete_network of a missing network');
    }
  });
  await c('calculate_vm_cloud_properties returns an object', async () => {
    const r = await cpi.call('calculate_vm_cloud_properties', [
      { cpu: 2, ram: 1024, ephemeral_disk_size: 2048 },
    ]);
    ensure(r !== null && typeof r === 'object' && !Array.isArray(r), `returned ${short(r)}`);
  });

  return maxApi;
}
