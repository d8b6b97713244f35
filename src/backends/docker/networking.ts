import type { NetworkSpec, Networks } from '../../cpi/types.ts';
import { vmCreationFailed } from '../../rpc/errors.ts';
import { prefixToNetmask, subnetContains, subnetOf } from '../../util/ipv4.ts';
import { DockerApiError } from './engine/client.ts';
import type { DockerNetworks } from './engine/networks.ts';
import type { EndpointSettings } from './engine/types.ts';
import { LABELS } from './labels.ts';
import { checkNetworkAllowed } from './vm-policy.ts';

/** What network planning asks of the engine. */
export type NetworkApi = Pick<DockerNetworks, 'inspect' | 'create'>;

/** One BOSH network as the engine will realise it. */
export interface NetworkAttachment {
  boshName: string;
  dockerName: string;
  endpoint: Record<string, unknown>;
  /** Created by the CPI (and so removed by it when no VM uses it any more). */
  managed: boolean;
  /** The engine's `host` network: the VM shares the host's network namespace. */
  hostNetwork: boolean;
  isDefaultGateway: boolean;
}

const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

function dockerNetworkName(
  boshName: string,
  spec: NetworkSpec,
  defaultNetwork: string,
): { name: string; subnet?: string } {
  const requested = spec.cloud_properties.name;
  if (requested !== undefined && (typeof requested !== 'string' || !NAME.test(requested)))
    throw vmCreationFailed(
      `Network '${boshName}': cloud_properties.name must be a Docker network name`,
      false,
    );
  if (spec.type === 'dynamic') return { name: (requested as string | undefined) ?? defaultNetwork };
  if (!spec.ip || !spec.netmask)
    throw vmCreationFailed(`Network '${boshName}' is manual but has no ip and netmask`, false);
  const subnet = subnetOf(spec.ip, spec.netmask);
  if (!subnet)
    throw vmCreationFailed(
      `Network '${boshName}': '${spec.ip}'/'${spec.netmask}' is not an IPv4 address and netmask`,
      false,
    );
  return { name: (requested as string | undefined) ?? `bosh-${subnet.replace(/[./]/g, '-')}`, subnet };
}

/** The network that carries the default route: `default` contains "gateway", else the first by name. */
export function defaultGatewayNetwork(networks: Networks): string | undefined {
  const candidates = Object.keys(networks)
    .filter((n) => networks[n]?.type !== 'vip')
    .sort();
  return candidates.find((n) => networks[n]?.default?.includes('gateway')) ?? candidates[0];
}

/**
 * Creates a network, or accepts it when a concurrent create_vm made it first: the engine then
 * refuses the second creation with 403 "Pool overlaps" (the name check passed before the first
 * creation took the subnet), not with the 409 a plain name clash gives.
 */
async function createOrJoin(api: NetworkApi, name: string, spec: Record<string, unknown>): Promise<void> {
  // Racing callers see a name conflict (409) or an overlapping pool (403) while another CPI's
  // network is being created, or while a removed one is still being torn down: wait and look again.
  let lastError: unknown;
  for (let attempt = 0; attempt < 30; attempt++) {
    if (attempt > 0 && (await api.inspect(name))) return;
    try {
      if (await api.create({ Name: name, ...spec })) return;
    } catch (e) {
      if (!(e instanceof DockerApiError && e.status === 403)) throw e;
      lastError = e;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (await api.inspect(name)) return;
  throw lastError ?? new Error(`network '${name}' could neither be created nor found`);
}

/**
 * Makes sure every Docker network the VM needs exists (creating bridge networks for manual
 * subnets on demand) and says how the container joins each.
 */
export async function planNetworks(
  networks: Networks,
  api: NetworkApi,
  defaultNetwork: string,
  directorUuid: string,
  allowedNetworks?: string[],
): Promise<NetworkAttachment[]> {
  const gatewayNetwork = defaultGatewayNetwork(networks);
  const plan: NetworkAttachment[] = [];
  for (const [boshName, spec] of Object.entries(networks).sort(([a], [b]) => a.localeCompare(b))) {
    if (spec.type === 'vip') continue;
    const { name, subnet } = dockerNetworkName(boshName, spec, defaultNetwork);
    let existing = await api.inspect(name);
    let managed = existing?.Labels?.[LABELS.network] === 'managed';
    if (!existing && subnet) {
      await createOrJoin(api, name, {
        Driver: 'bridge',
        IPAM: {
          Driver: 'default',
          Config: [{ Subnet: subnet, ...(spec.gateway ? { Gateway: spec.gateway } : {}) }],
        },
        Labels: { [LABELS.cpi]: 'docker', [LABELS.network]: 'managed', [LABELS.director]: directorUuid },
      });
      existing = await api.inspect(name);
      managed = true;
    }
    if (!existing)
      throw vmCreationFailed(`Network '${boshName}': Docker network '${name}' does not exist`, false);
    if (spec.cloud_properties.name !== undefined)
      checkNetworkAllowed(boshName, name, existing.Driver, {
        default_network: defaultNetwork,
        allowed_networks: allowedNetworks,
      });
    if (subnet && spec.ip) {
      const subnets = (existing.IPAM.Config ?? []).map((c) => c.Subnet ?? '').filter(Boolean);
      if (!subnets.some((s) => subnetContains(s, spec.ip as string)))
        throw vmCreationFailed(
          `Network '${boshName}': IP ${spec.ip} is outside Docker network '${name}' (subnets ${subnets.join(', ') || 'none'})`,
          false,
        );
    }
    plan.push({
      boshName,
      dockerName: name,
      endpoint: spec.type === 'manual' && spec.ip ? { IPAMConfig: { IPv4Address: spec.ip } } : {},
      managed,
      hostNetwork: existing.Driver === 'host',
      isDefaultGateway: boshName === gatewayNetwork,
    });
  }
  return plan;
}

/** Fills in what the engine chose (dynamic addresses) so the Director and the agent see the real values. */
export function reportNetworks(
  networks: Networks,
  plan: NetworkAttachment[],
  actual: Record<string, EndpointSettings>,
): Networks {
  const out: Networks = {};
  for (const [boshName, spec] of Object.entries(networks)) {
    const attachment = plan.find((p) => p.boshName === boshName);
    const endpoint = attachment ? actual[attachment.dockerName] : undefined;
    const copy: NetworkSpec = { ...spec };
    if (spec.type === 'dynamic' && endpoint?.IPAddress) {
      copy.ip = endpoint.IPAddress;
      if (endpoint.IPPrefixLen) copy.netmask = prefixToNetmask(endpoint.IPPrefixLen);
      if (!copy.gateway && endpoint.Gateway) copy.gateway = endpoint.Gateway;
    }
    out[boshName] = copy;
  }
  return out;
}

/** DNS servers of the network that serves DNS (`default` contains "dns", else the gateway network). */
export function dnsServers(networks: Networks): string[] {
  const names = Object.keys(networks).sort();
  const dnsNetwork =
    names.find((n) => networks[n]?.default?.includes('dns')) ?? defaultGatewayNetwork(networks);
  return (dnsNetwork ? networks[dnsNetwork]?.dns : undefined) ?? [];
}

/** `cloud_properties.ports`: ["8080/tcp", "2222:22", "127.0.0.1:6868:6868/tcp"]. */
export function portBindings(
  ports: unknown,
  hostIp: string,
): { exposed: Record<string, object>; bindings: Record<string, unknown[]> } {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, unknown[]> = {};
  if (ports === undefined) return { exposed, bindings };
  if (!Array.isArray(ports))
    throw vmCreationFailed('cloud_properties.ports must be a list such as ["6868:6868/tcp"]', false);
  for (const entry of ports) {
    const m =
      typeof entry === 'string'
        ? /^(?:(\d+\.\d+\.\d+\.\d+):)?(?:(\d+):)?(\d+)(?:\/(tcp|udp))?$/.exec(entry)
        : null;
    if (!m)
      throw vmCreationFailed(
        `cloud_properties.ports: '${String(entry)}' is not [host_ip:][host_port:]port[/tcp|udp]`,
        false,
      );
    const key = `${m[3]}/${m[4] ?? 'tcp'}`;
    exposed[key] = {};
    bindings[key] = [...(bindings[key] ?? []), { HostIp: m[1] ?? hostIp, HostPort: m[2] ?? m[3] }];
  }
  return { exposed, bindings };
}
