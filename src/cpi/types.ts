import type { DiskCid, NetworkId, StemcellCid, VmCid } from '../util/cloud-ids.ts';

/** The CPI's own vocabulary, shared by the RPC layer, the agent settings and every backend. */
export type { Cid, DiskCid, NetworkId, SnapshotCid, StemcellCid, VmCid } from '../util/cloud-ids.ts';

export type CloudProperties = Record<string, unknown>;
export type Metadata = Record<string, string>;

export interface NetworkSpec {
  type: 'manual' | 'dynamic' | 'vip';
  ip?: string;
  netmask?: string;
  gateway?: string;
  prefix?: string;
  dns?: string[];
  default?: string[];
  cloud_properties: CloudProperties;
  [unknownKey: string]: unknown;
}
export type Networks = Record<string, NetworkSpec>;

/** How the agent finds a persistent disk: a path string, or an object whose values are all strings. */
export type DiskHint = string | Record<string, string>;

export interface AgentConfig {
  mbus: string;
  ntp: string[];
  blobstore?: { provider: string; options: Record<string, unknown> };
}

export interface CreateVmInput {
  agentId: string;
  stemcellCid: StemcellCid;
  cloudProperties: CloudProperties;
  networks: Networks;
  diskCids: DiskCid[];
  env: Record<string, unknown>;
}

export interface CreatedVm {
  vmCid: VmCid;
  /** The networks as the VM really has them (dynamic addresses filled in). */
  networks: Networks;
}

export interface VmResources {
  cpu: number;
  ram: number;
  ephemeral_disk_size: number;
}

export interface NetworkDefinition {
  type: string;
  cloud_properties: CloudProperties;
  range?: string;
  gateway?: string;
  netmask_bits?: number;
}

/** A network the backend created for the Director: its ID, the address plan and its cloud_properties. */
export interface CreatedNetwork {
  networkId: NetworkId;
  /** What the Director records of the network (range, gateway, reserved addresses…). */
  details: Record<string, unknown>;
  cloudProperties: CloudProperties;
}
