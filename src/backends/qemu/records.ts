import type { CloudProperties, DiskCid, Metadata, SnapshotCid, StemcellCid, VmCid } from '../../cpi/types.ts';
import type { Accel } from './accel.ts';
import type { Nic } from './network.ts';

/**
 * The JSON records in data_dir (see paths.ts). Written atomically, read back by later calls; only
 * this backend writes them, so the IDs in them are as checked as when they were written.
 */

export interface StemcellRecord {
  cid: StemcellCid;
  source_format: string;
  virtual_size: number;
  cloud_properties: CloudProperties;
  tags: Metadata;
  created_at: string;
  /** delete_stemcell was called while VMs still used the image; it goes with the last of them. */
  deleted?: boolean;
}

export interface VmRecord {
  cid: VmCid;
  agent_id: string;
  stemcell_cid: StemcellCid;
  director_uuid: string;
  created_at: string;
  cpu: number;
  ram_mib: number;
  accel: Accel;
  nics: Nic[];
  ephemeral: { serial: string; size_mib: number } | null;
  /** The uid:gid its QEMU runs as (run-as.ts); absent: root (older records, or vm_uid_base null). */
  run_as?: { uid: number; gid: number };
}

export interface DiskRecord {
  cid: DiskCid;
  serial: string;
  size_mib: number;
  /** 'ext4': formatted by the CPI on the whole device; null: blank (the agent partitions and formats it). */
  filesystem: 'ext4' | null;
  cloud_properties: CloudProperties;
  created_at: string;
  /** The VM that holds it; kept for conflict checks and for cold starts, QMP is the truth for a running VM. */
  attached_to: VmCid | null;
  metadata: Metadata;
}

export interface SnapshotRecord {
  cid: SnapshotCid;
  disk_cid: DiskCid;
  size_mib: number;
  created_at: string;
  /** How the copy was taken: a QEMU backup job of the attached disk, or qemu-img on the detached one. */
  taken: 'backup-job' | 'offline';
  metadata: Metadata;
}
