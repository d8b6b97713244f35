import type { Logger } from '../log/logger.ts';
import type {
  AgentConfig,
  CloudProperties,
  CreatedVm,
  CreateVmInput,
  DiskHint,
  Metadata,
  NetworkDefinition,
  VmResources,
} from './types.ts';

/**
 * What every backend implements, in the CPI's own terms. A backend never sees a request or a
 * response; the RPC layer never sees a container or a QEMU process. Optional methods that a
 * backend leaves out answer Bosh::Clouds::NotImplemented.
 */
export interface Backend {
  createStemcell(imagePath: string, cloudProperties: CloudProperties, tags: Metadata): Promise<string>;
  deleteStemcell(stemcellCid: string): Promise<void>;

  createVm(input: CreateVmInput): Promise<CreatedVm>;
  deleteVm(vmCid: string): Promise<void>;
  hasVm(vmCid: string): Promise<boolean>;
  rebootVm(vmCid: string): Promise<void>;
  setVmMetadata(vmCid: string, metadata: Metadata): Promise<void>;
  calculateVmCloudProperties(resources: VmResources): CloudProperties;

  createDisk(sizeMiB: number, cloudProperties: CloudProperties, vmCid: string | null): Promise<string>;
  deleteDisk(diskCid: string): Promise<void>;
  hasDisk(diskCid: string): Promise<boolean>;
  attachDisk(vmCid: string, diskCid: string): Promise<DiskHint>;
  detachDisk(vmCid: string, diskCid: string): Promise<void>;
  setDiskMetadata(diskCid: string, metadata: Metadata): Promise<void>;
  getDisks(vmCid: string): Promise<string[]>;
  /** Grows a detached disk in place; throws NotSupported for a smaller size. */
  resizeDisk(diskCid: string, newSizeMiB: number): Promise<void>;
  /** Returns the CID of the disk that now holds the data (the same CID when changed in place). */
  updateDisk?(diskCid: string, newSizeMiB: number, cloudProperties: CloudProperties): Promise<string | null>;

  snapshotDisk?(diskCid: string, metadata: Metadata): Promise<string>;
  deleteSnapshot?(snapshotCid: string): Promise<void>;

  createNetwork?(definition: NetworkDefinition): Promise<[string, Record<string, unknown>, CloudProperties]>;
  deleteNetwork?(networkId: string): Promise<void>;

  /** Releases connections so the process can exit at once. */
  close?(): void;
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
  load(): Promise<BackendModule>;
}
