import type { E2eBackend, MadeIds, Subnet } from './backends.ts';
import { sleep } from './util.ts';

/** The blobstore create-env gives its agent: packages and jobs are put on the VM's own disk. */
export const LOCAL_BLOBSTORE = {
  provider: 'local',
  options: { blobstore_path: '/var/vcap/micro_bosh/data/cache' },
};

/** The create_vm `env` a caller gives the real agent: its mbus certificate and a blobstore (it exits without one). */
export const agentEnv = (cert: { ca: string; certificate: string; private_key: string }) => ({
  bosh: { mbus: { cert }, blobstores: [LOCAL_BLOBSTORE] },
});

/** One dynamic network that is the VM's default. */
export const DYNAMIC_NETWORKS = {
  default: { type: 'dynamic', dns: [], default: ['dns', 'gateway'], cloud_properties: {} },
};

/** One manual network on `subnet` with the VM at `ip`, the VM's default. */
export const manualNetworks = (ip: string, subnet: Subnet, cloudProperties: object) => ({
  default: {
    type: 'manual',
    ip,
    netmask: subnet.netmask,
    gateway: subnet.gateway,
    dns: [],
    default: ['dns', 'gateway'],
    cloud_properties: cloudProperties,
  },
});

/** What the backend still holds of `made`, after up to 10 s for asynchronous clean-up to finish. */
export async function settledLeftovers(backend: E2eBackend, made: MadeIds): Promise<string[]> {
  let left: string[] = [];
  for (let i = 0; i < 10; i++) {
    left = await backend.leftovers(made);
    if (left.length === 0) return left;
    await sleep(1000);
  }
  return left;
}
