import { access, readdir } from 'node:fs/promises';
import type { Networks, VmCid } from '../../cpi/types.ts';
import type { Logger } from '../../log/logger.ts';
import { vmCreationFailed } from '../../rpc/errors.ts';
import { run, runChecked } from '../../util/command.ts';
import { INTERFACE_NAME, type QemuProperties } from './config.ts';
import { nicMac, tapName } from './ids.ts';

/**
 * Every non-vip BOSH network becomes a virtio NIC on a host bridge, through a tap device the
 * CPI creates and attaches to the bridge. The agent configures the guest side: it finds the NIC
 * by the MAC given in the settings (preconfigured: false) and sets the static IP of a manual
 * network, or runs DHCP for a dynamic one (DHCP on the bridge is the operator's business).
 */
export interface Nic {
  network: string;
  index: number;
  mac: string;
  tap: string;
  bridge: string;
}

const MAX_NICS = 10;

const isDefaultGateway = (spec: Networks[string]) => spec.default?.includes('gateway') ?? false;

export function planNics(vmCid: VmCid, networks: Networks, props: QemuProperties): Nic[] {
  const names = Object.keys(networks)
    .filter((name) => networks[name]?.type !== 'vip')
    .sort((a, b) => {
      const ga = isDefaultGateway(networks[a] as Networks[string]);
      const gb = isDefaultGateway(networks[b] as Networks[string]);
      return ga === gb ? a.localeCompare(b) : ga ? -1 : 1;
    });
  if (names.length > MAX_NICS)
    throw vmCreationFailed(`At most ${MAX_NICS} networks per VM are supported, got ${names.length}`, false);
  return names.map((name, index) => {
    const spec = networks[name] as Networks[string];
    const requested = spec.cloud_properties.bridge;
    if (requested !== undefined && (typeof requested !== 'string' || !INTERFACE_NAME.test(requested)))
      throw vmCreationFailed(
        `networks.${name}.cloud_properties.bridge must be a network interface name, got ${JSON.stringify(requested)}`,
        false,
      );
    const bridge = requested ?? props.default_bridge;
    if (!bridge)
      throw vmCreationFailed(
        `Network '${name}' names no host bridge: set its cloud_properties.bridge or config.cloud.properties.qemu.default_bridge`,
        false,
      );
    if (props.bridges && !props.bridges.includes(bridge))
      throw vmCreationFailed(
        `Network '${name}': bridge '${bridge}' is not one of the configured bridges (${props.bridges.join(', ')})`,
        false,
      );
    return { network: name, index, mac: nicMac(vmCid, name), tap: tapName(vmCid, index), bridge };
  });
}

export async function bridgeExists(bridge: string): Promise<boolean> {
  try {
    await access(`/sys/class/net/${bridge}/bridge`);
    return true;
  } catch {
    return false;
  }
}

/** Creates each NIC's tap on its bridge; the taps are persistent so the CPI controls their lifetime. */
export async function createTaps(nics: Nic[], logger: Logger): Promise<void> {
  for (const nic of nics) {
    if (!(await bridgeExists(nic.bridge)))
      throw vmCreationFailed(`Host bridge '${nic.bridge}' of network '${nic.network}' does not exist`, false);
    await deleteTap(nic.tap);
    await runChecked('ip', ['tuntap', 'add', 'dev', nic.tap, 'mode', 'tap']);
    await runChecked('ip', ['link', 'set', 'dev', nic.tap, 'master', nic.bridge]);
    await runChecked('ip', ['link', 'set', 'dev', nic.tap, 'up']);
    logger.debug(`tap ${nic.tap} on bridge ${nic.bridge} for network ${nic.network} (mac ${nic.mac})`);
  }
}

async function deleteTap(tap: string): Promise<void> {
  const res = await run('ip', ['link', 'delete', 'dev', tap]);
  if (res.exitCode !== 0 && !/Cannot find device|does not exist/i.test(res.stderr))
    throw new Error(`Deleting tap ${tap} failed: ${res.stderr.trim()}`);
}

/** Deletes every tap a VM may have (their names derive from the CID, so no record is needed). */
export async function deleteTaps(vmCid: VmCid): Promise<void> {
  const prefix = tapName(vmCid, 0).slice(0, -1);
  let present: string[];
  try {
    present = await readdir('/sys/class/net');
  } catch {
    return;
  }
  for (const name of present)
    if (name.startsWith(prefix) && /^\d$/.test(name.slice(prefix.length))) await deleteTap(name);
}
