import { createHash } from 'node:crypto';
import type { DiskCid, VmCid } from '../../cpi/types.ts';
import { cloudIds } from '../../util/cloud-ids.ts';

/**
 * Cloud IDs of this backend: a kind prefix and a UUID. Every ID from a request is checked
 * against its pattern before it becomes part of a path, a QEMU argument or a device name, so
 * `../../etc` or `a,file=/etc/shadow` never reaches the file system or a command line.
 */
const KINDS = ['vm', 'disk', 'snap', 'stemcell'] as const;
export type IdKind = (typeof KINDS)[number];

export const { newId, isId, parseId } = cloudIds<IdKind>(KINDS);

const hexOf = (cid: string) => cid.slice(cid.indexOf('-') + 1).replaceAll('-', '');

/**
 * The virtio-blk serial of a disk: virtio keeps at most 20 bytes, and the BOSH agent's virtio
 * resolver looks for /dev/disk/by-id/*<first 20 characters of the hinted id>, so the serial is
 * exactly 20 characters and is also the hint's id. Derived from the CID: stable across VMs.
 */
export const diskSerial = (diskCid: DiskCid): string => hexOf(diskCid).slice(0, 20);
export const ephemeralSerial = (vmCid: VmCid): string => `e${hexOf(vmCid).slice(0, 19)}`;

/** QEMU names of a hot-pluggable disk (node names are limited to 31 characters). */
export const diskDeviceId = (serial: string) => `pd-${serial}`;
export const diskNodeName = (serial: string) => `pdn-${serial}`;

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * A NIC's MAC: QEMU's locally administered 52:54 prefix and 32 bits of a hash of the VM CID and
 * the network name, so a VM gets the same MACs every time they are computed.
 */
export function nicMac(vmCid: VmCid, networkName: string): string {
  const hash = digest(`${vmCid}/${networkName}`);
  return ['52', '54', ...[...hash.subarray(0, 4)].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** A tap device name (IFNAMSIZ: at most 15 characters), derived from the VM CID and NIC index. */
export const tapName = (vmCid: VmCid, index: number): string =>
  `qt${digest(vmCid).toString('hex').slice(0, 10)}n${index}`;
