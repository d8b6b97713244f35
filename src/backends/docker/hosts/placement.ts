import type { CreateVmInput } from '../../../cpi/types.ts';
import { CpiFailure, cloudError, vmCreationFailed } from '../../../rpc/errors.ts';
import { LABELS } from '../labels.ts';
import type { DockerHost, HostPool } from './pool.ts';

/** How long placement waits for a host to say how many VMs it runs before passing it over. */
export const LOAD_TIMEOUT_MS = 5_000;

export interface Placement {
  host: DockerHost;
  reason: string;
}

export interface HostLoad {
  host: DockerHost;
  vms?: number;
  /** Why the host could not be asked (unreachable, TLS failure, no answer in time). */
  error?: string;
}

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** Settles with the step's result, or rejects once `ms` passed (the request itself ends with the process). */
export function withTimeout<T>(step: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([step, timeout]).finally(() => clearTimeout(timer));
}

/** Counts the CPI's VM containers (of every director) on each host, all hosts at once. */
export function hostLoads(pool: HostPool, timeoutMs = LOAD_TIMEOUT_MS): Promise<HostLoad[]> {
  return Promise.all(
    pool.hosts.map(async (host): Promise<HostLoad> => {
      try {
        const count = async () => {
          const docker = host.context.docker;
          const list = await docker.json<unknown[]>('GET', '/containers/json', 'Counting VM containers', {
            query: { all: true, filters: JSON.stringify({ label: [`${LABELS.cpi}=docker`, LABELS.vm] }) },
            timeoutMs,
          });
          return list.length;
        };
        return { host, vms: await withTimeout(count(), timeoutMs, 'counting VMs') };
      } catch (e) {
        const failure = pool.failure(host, e);
        return { host, error: failure instanceof CpiFailure ? failure.message : messageOf(failure) };
      }
    }),
  );
}

const describeLoads = (loads: HostLoad[]) =>
  loads
    .map((l) => (l.error !== undefined ? `${l.host.name}: ${l.error}` : `${l.host.name}: ${l.vms} VMs`))
    .join('; ');

/**
 * The reachable host with the fewest VMs. Hosts with equal counts are chosen at random, so VMs
 * the Director creates in parallel (which all see the same counts) spread over them.
 */
export async function leastLoaded(pool: HostPool, what: string): Promise<Placement> {
  const loads = await hostLoads(pool);
  const reachable = loads.filter((l): l is HostLoad & { vms: number } => l.vms !== undefined);
  if (reachable.length === 0)
    throw cloudError(`No Docker host is reachable for ${what} (${describeLoads(loads)})`, true);
  const fewest = Math.min(...reachable.map((l) => l.vms));
  const candidates = reachable.filter((l) => l.vms === fewest);
  const chosen = candidates[
    candidates.length === 1 ? 0 : Math.floor(Math.random() * candidates.length)
  ] as HostLoad;
  return { host: chosen.host, reason: `least loaded reachable host (${describeLoads(loads)})` };
}

/**
 * Where create_vm puts a VM: the host `cloud_properties.host` names (an AZ's cloud_properties
 * arrive merged into the VM's, so `azs` map to hosts), else the host that holds the VM's
 * persistent disks (disks never move), else the least loaded reachable host.
 */
export async function placeVm(pool: HostPool, input: CreateVmInput): Promise<Placement> {
  const requested = input.cloudProperties.host;
  if (requested !== undefined) {
    const host = typeof requested === 'string' ? pool.named(requested) : undefined;
    // A single-host config (`docker.host`) ignored cloud_properties.host before hosts existed; it still does.
    if (!host && !pool.qualifiedIds) {
      pool.logger.warn(
        `cloud_properties.host ${JSON.stringify(requested)} ignored: this CPI has a single Docker host (docker.host)`,
      );
      return { host: pool.first, reason: 'the only host' };
    }
    if (!host)
      throw vmCreationFailed(
        `cloud_properties.host ${JSON.stringify(requested)} is not a Docker host of this CPI (hosts: ${pool.names})`,
        false,
      );
    return { host, reason: 'cloud_properties.host names it' };
  }
  const diskHosts = new Map<DockerHost, string[]>();
  for (const cid of input.diskCids) {
    const at = pool.locate('disk', cid);
    if (at.valid) diskHosts.set(at.host, [...(diskHosts.get(at.host) ?? []), cid]);
  }
  const [first] = diskHosts;
  if (first) {
    const [host, cids] = first;
    let reason = `it holds the VM's persistent disk${cids.length > 1 ? 's' : ''} ${cids.join(', ')}`;
    if (diskHosts.size > 1)
      reason += `; the disks are spread over hosts ${[...diskHosts.keys()].map((h) => h.name).join(', ')}, and only those on '${host.name}' can be attached`;
    return { host, reason };
  }
  if (pool.hosts.length === 1) return { host: pool.first, reason: 'the only host' };
  try {
    return await leastLoaded(pool, `the VM of agent '${input.agentId}'`);
  } catch (e) {
    throw e instanceof CpiFailure ? vmCreationFailed(e.message, e.okToRetry) : e;
  }
}
