import type { Overridable } from '../config/config.ts';
import type { Logger } from '../log/logger.ts';
import type { CpiFailure } from '../rpc/errors.ts';
import type {
  AgentConfig,
  CloudProperties,
  CreatedNetwork,
  CreatedVm,
  CreateVmInput,
  DiskCid,
  DiskHint,
  Metadata,
  NetworkDefinition,
  NetworkId,
  SnapshotCid,
  StemcellCid,
  VmCid,
  VmResources,
} from './types.ts';

/*
 * What every backend implements, in the CPI's own terms. A backend never sees a request or a
 * response; the RPC layer never sees a container or a QEMU process.
 */

export interface StemcellMethods {
  createStemcell(imagePath: string, cloudProperties: CloudProperties, tags: Metadata): Promise<StemcellCid>;
  deleteStemcell(stemcellCid: StemcellCid): Promise<void>;
}

export interface VmMethods {
  createVm(input: CreateVmInput): Promise<CreatedVm>;
  deleteVm(vmCid: VmCid): Promise<void>;
  hasVm(vmCid: VmCid): Promise<boolean>;
  rebootVm(vmCid: VmCid): Promise<void>;
  setVmMetadata(vmCid: VmCid, metadata: Metadata): Promise<void>;
  calculateVmCloudProperties(resources: VmResources): CloudProperties;
}

export interface DiskMethods {
  createDisk(sizeMiB: number, cloudProperties: CloudProperties, vmCid: VmCid | null): Promise<DiskCid>;
  deleteDisk(diskCid: DiskCid): Promise<void>;
  hasDisk(diskCid: DiskCid): Promise<boolean>;
  attachDisk(vmCid: VmCid, diskCid: DiskCid): Promise<DiskHint>;
  detachDisk(vmCid: VmCid, diskCid: DiskCid): Promise<void>;
  setDiskMetadata(diskCid: DiskCid, metadata: Metadata): Promise<void>;
  getDisks(vmCid: VmCid): Promise<DiskCid[]>;
  /** Grows a detached disk in place; throws NotSupported for a smaller size. */
  resizeDisk(diskCid: DiskCid, newSizeMiB: number): Promise<void>;
}

/** Optional: changes a disk's size or cloud_properties (update_disk). */
export interface DiskUpdater {
  /** Returns the CID of the disk that now holds the data (the same CID when changed in place). */
  updateDisk(diskCid: DiskCid, newSizeMiB: number, cloudProperties: CloudProperties): Promise<DiskCid | null>;
}

/** Optional: snapshot_disk and delete_snapshot. */
export interface Snapshots {
  snapshotDisk(diskCid: DiskCid, metadata: Metadata): Promise<SnapshotCid>;
  deleteSnapshot(snapshotCid: SnapshotCid): Promise<void>;
}

/** Optional: networks the Director manages (create_network and delete_network). */
export interface ManagedNetworks {
  createNetwork(definition: NetworkDefinition): Promise<CreatedNetwork>;
  deleteNetwork(networkId: NetworkId): Promise<void>;
}

/**
 * The abilities a backend may lack. The RPC layer asks once per call whether the backend has
 * one; a missing ability always answers Bosh::Clouds::NotImplemented, which every caller of
 * these methods tolerates (protocol.md §2.1: the Director ignores it for snapshot_disk and
 * copies the disk for update_disk, as it does for NotSupported).
 */
export interface Capabilities {
  diskUpdater?: DiskUpdater;
  snapshots?: Snapshots;
  managedNetworks?: ManagedNetworks;
}

export interface Backend extends StemcellMethods, VmMethods, DiskMethods {
  readonly capabilities: Capabilities;
  /**
   * The backend's one error boundary: turns whatever its methods throw (engine, transport,
   * host-command failures) into the CpiFailure the caller receives. A CpiFailure passes unchanged.
   */
  failure(error: unknown): CpiFailure;
  /** Releases connections so the process can exit at once. */
  close(): void;
}

export interface BackendContext {
  /** The backend's own section of cloud.properties (after the request context was merged over it). */
  properties: Record<string, unknown>;
  agent: AgentConfig;
  directorUuid: string;
  stemcellApiVersion: number | undefined;
  logger: Logger;
}

export interface BackendModule {
  create(context: BackendContext): Backend;
}

/** What the engine knows about a backend without loading it (info must stay cheap). */
export interface BackendDescriptor {
  stemcellFormats: readonly string[];
  /** Validates the backend's config section (cheap: runs for every call, info included). */
  checkProperties(raw: unknown): unknown;
  /** Keys of the backend's section a request context (cpi-config) may override; none when absent. */
  contextOverridable?: Overridable;
  load(): Promise<BackendModule>;
}
