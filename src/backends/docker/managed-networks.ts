import type { CreatedNetwork, NetworkDefinition, NetworkId } from '../../cpi/types.ts';
import { cloudError, networkNotFound } from '../../rpc/errors.ts';
import { parseIpv4, prefixToNetmask, subnetOf } from '../../util/ipv4.ts';
import type { DockerContext } from './context.ts';
import { isId, newId } from './ids.ts';
import { LABELS } from './labels.ts';

/**
 * Director-managed networks (cloud config `managed: true`): the CPI creates a bridge network
 * for the range and hands back cloud_properties that name it, so create_vm joins it.
 */
export async function createNetwork(
  ctx: DockerContext,
  definition: NetworkDefinition,
  /** The same ID on every host when the network is created on several engines. */
  id = newId('net'),
): Promise<CreatedNetwork> {
  if (definition.type !== 'manual' && definition.type !== 'dynamic')
    throw cloudError(`create_network: type '${definition.type}' is not supported (manual or dynamic)`);
  const ipam: Record<string, string> = {};
  if (definition.range) {
    const [base = '', bits = ''] = definition.range.split('/');
    const prefix = Number(bits);
    const subnet =
      Number.isInteger(prefix) && prefix >= 8 && prefix <= 30
        ? subnetOf(base, prefixToNetmask(prefix))
        : undefined;
    if (!subnet)
      throw cloudError(`create_network: range '${definition.range}' is not an IPv4 CIDR between /8 and /30`);
    ipam.Subnet = subnet;
  }
  if (definition.gateway) {
    if (parseIpv4(definition.gateway) === undefined)
      throw cloudError(`create_network: gateway '${definition.gateway}' is not an IPv4 address`);
    ipam.Gateway = definition.gateway;
  }
  await ctx.networks.create({
    Name: id,
    Driver: 'bridge',
    IPAM: { Driver: 'default', Config: Object.keys(ipam).length ? [ipam] : [] },
    Labels: {
      [LABELS.cpi]: 'docker',
      [LABELS.network]: 'director-managed',
      [LABELS.director]: ctx.directorUuid,
    },
  });
  const created = await ctx.networks.inspect(id);
  const config = created?.IPAM.Config?.[0] ?? {};
  ctx.logger.info(`Created network ${id} (${config.Subnet ?? 'engine-chosen range'})`);
  return {
    networkId: id,
    details: {
      range: config.Subnet ?? definition.range ?? '',
      gateway: config.Gateway ?? definition.gateway ?? '',
      reserved: [],
    },
    cloudProperties: { ...definition.cloud_properties, name: id },
  };
}

export async function deleteNetwork(ctx: DockerContext, networkId: NetworkId): Promise<void> {
  if (!isId('net', networkId)) throw networkNotFound(networkId);
  const outcome = await ctx.networks.remove(networkId);
  if (outcome === 'absent') throw networkNotFound(networkId);
  if (outcome === 'in-use') throw cloudError(`Network '${networkId}' still has VMs attached`);
  ctx.logger.info(`Deleted network ${networkId}`);
}
