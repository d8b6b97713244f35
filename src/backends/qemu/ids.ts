import { createHash, randomBytes } from 'node:crypto';
import type { DiskCid, VmCid } from '../../cpi/types.ts';
import { type Cid, cloudIds } from '../../util/cloud-ids.ts';

/**
 * Cloud IDs of this backend: a kind prefix and a UUID. Every ID from a request is checked
 * against its pattern before it becomes part of a path, a QEMU argument or a device name, so
 * `../../etc` or `a,file=/etc/shadow` never reaches the file system or a command line.
 */
const KINDS = ['vm', 'disk', 'snap', 'stemcell'] as const;
export type IdKind = (typeof KINDS)[number];

const uuidIds = cloudIds<IdKind>(KINDS);

/**
 * A virtio-blk serial holds at most 20 bytes, and the BOSH agent's virtio resolver globs
 * /dev/disk/by-id/*<disk CID> (the whole CID; older agents its first 20 characters) and refuses
 * IDs shorter than 20 characters. So a disk CID is exactly 20 characters, `disk-` and 15 hex
 * digits (60 random bits), and is used whole as the disk's serial.
 */
export const DISK_CID_LENGTH = 20;
const SHORT_DISK_CID = /^disk-[0-9a-f]{15}$/;

export function newId<T extends IdKind>(kind: T): Cid<T> {
  if (kind !== 'disk') return uuidIds.newId(kind);
  return `disk-${randomBytes(8).toString('hex').slice(0, 15)}` as Cid<T>;
}

/** Disks made by earlier versions (`disk-<uuid>`) stay valid. */
export const isId = (kind: IdKind, value: string): boolean =>
  uuidIds.isId(kind, value) || (kind === 'disk' && SHORT_DISK_CID.test(value));

/** A string read back from the disk, as an ID of `kind` if it is one. */
export const parseId = <T extends IdKind>(kind: T, value: string): Cid<T> | undefined =>
  isId(kind, value) ? (value as Cid<T>) : undefined;

const hexOf = (cid: string) => cid.slice(cid.indexOf('-') + 1).replaceAll('-', '');

/**
 * The virtio-blk serial of a disk, stable across VMs: the CID itself; for a `disk-<uuid>` of an
 * earlier version, the first 20 hex digits of its UUID as before (the agent finds those through
 * the hint's `path`, see diskHint).
 */
export const diskSerial = (diskCid: DiskCid): string =>
  SHORT_DISK_CID.test(diskCid) ? diskCid : hexOf(diskCid).slice(0, 20);
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
