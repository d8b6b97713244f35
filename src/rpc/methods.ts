import type { Backend } from '../cpi/backend.ts';
import { boundedInt, cpuCount, diskMiB, LIMITS, ramMiB } from '../cpi/cloud-properties.ts';
import type {
  CreateVmInput,
  DiskHint,
  Metadata,
  NetworkDefinition,
  Networks,
  VmResources,
} from '../cpi/types.ts';
import { type Check, int, nullable, object, optional, str } from '../util/check.ts';
import { cid, cloudProperties, diskCids, metadata, networks, vmEnv } from './arguments.ts';
import { cloudError, notImplemented, notSupported } from './errors.ts';

export interface Call {
  apiVersion: number;
  stemcellFormats: readonly string[];
  backend(): Promise<Backend>;
}

interface Argument {
  name: string;
  check: Check<unknown>;
  /** May be left out at the end of the list (older callers send fewer arguments). */
  optional?: boolean;
}

export interface MethodDefinition {
  args: Argument[];
  run(args: unknown[], call: Call): Promise<unknown>;
}

const arg = (name: string, check: Check<unknown>, isOptional = false): Argument => ({
  name,
  check,
  optional: isOptional,
});

const unsupportedBy = (method: string) =>
  notImplemented(`Method '${method}' is not implemented by this CPI's backend`);

function requireHint(hint: DiskHint): DiskHint {
  const empty = typeof hint === 'string' ? hint === '' : Object.keys(hint).length === 0;
  if (empty) throw cloudError('The backend returned an empty disk hint');
  return hint;
}

const tagsArgument = (): Check<Metadata> => (v, path) => {
  const env = nullable(object({ tags: optional(metadata(), {}) }))(v, path);
  return env?.tags ?? {};
};

/** Every CPI method: its arguments and how its result is shaped for the caller's API version. */
export const METHODS: Record<string, MethodDefinition> = {
  info: {
    args: [],
    run: async (_args, call) => ({ stemcell_formats: [...call.stemcellFormats], api_version: 3 }),
  },

  create_stemcell: {
    args: [
      arg('image_path', str({ nonEmpty: true })),
      arg('cloud_properties', cloudProperties()),
      arg('env', tagsArgument(), true),
    ],
    run: async ([imagePath, props, tags], call) =>
      (await call.backend()).createStemcell(
        imagePath as string,
        props as Record<string, unknown>,
        (tags ?? {}) as Metadata,
      ),
  },
  delete_stemcell: {
    args: [arg('stemcell_cid', cid())],
    run: async ([stemcellCid], call) => (await call.backend()).deleteStemcell(stemcellCid as string),
  },

  create_vm: {
    args: [
      arg('agent_id', str({ nonEmpty: true })),
      arg('stemcell_cid', cid()),
      arg('cloud_properties', cloudProperties()),
      arg('networks', networks()),
      arg('disk_cids', diskCids(), true),
      arg('env', vmEnv(), true),
    ],
    run: async ([agentId, stemcellCid, props, nets, disks, env], call) => {
      const input: CreateVmInput = {
        agentId: agentId as string,
        stemcellCid: stemcellCid as string,
        cloudProperties: props as Record<string, unknown>,
        networks: nets as Networks,
        diskCids: (disks ?? []) as string[],
        env: (env ?? {}) as Record<string, unknown>,
      };
      const created = await (await call.backend()).createVm(input);
      return call.apiVersion >= 2 ? [created.vmCid, created.networks] : created.vmCid;
    },
  },
  delete_vm: {
    args: [arg('vm_cid', cid())],
    run: async ([vmCid], call) => (await call.backend()).deleteVm(vmCid as string),
  },
  has_vm: {
    args: [arg('vm_cid', cid())],
    run: async ([vmCid], call) => (await (await call.backend()).hasVm(vmCid as string)) === true,
  },
  reboot_vm: {
    args: [arg('vm_cid', cid())],
    run: async ([vmCid], call) => (await call.backend()).rebootVm(vmCid as string),
  },
  set_vm_metadata: {
    args: [arg('vm_cid', cid()), arg('metadata', metadata())],
    run: async ([vmCid, meta], call) =>
      (await call.backend()).setVmMetadata(vmCid as string, meta as Metadata),
  },
  configure_networks: {
    args: [arg('vm_cid', cid()), arg('networks', networks())],
    run: async () => {
      throw notSupported('configure_networks is not supported: the VM is recreated with its new networks');
    },
  },
  calculate_vm_cloud_properties: {
    args: [
      arg(
        'desired_instance_size',
        object({ cpu: cpuCount(), ram: ramMiB(), ephemeral_disk_size: boundedInt(0, LIMITS.diskMiB, 'MiB') }),
      ),
    ],
    run: async ([size], call) => (await call.backend()).calculateVmCloudProperties(size as VmResources),
  },

  create_disk: {
    args: [
      arg('size', diskMiB()),
      arg('cloud_properties', cloudProperties()),
      arg('vm_cid', nullable(cid()), true),
    ],
    run: async ([size, props, vmCid], call) =>
      (await call.backend()).createDisk(
        size as number,
        props as Record<string, unknown>,
        (vmCid ?? null) as string | null,
      ),
  },
  delete_disk: {
    args: [arg('disk_cid', cid())],
    run: async ([diskCid], call) => (await call.backend()).deleteDisk(diskCid as string),
  },
  has_disk: {
    args: [arg('disk_cid', cid())],
    run: async ([diskCid], call) => (await (await call.backend()).hasDisk(diskCid as string)) === true,
  },
  resize_disk: {
    args: [arg('disk_cid', cid()), arg('new_size', diskMiB())],
    run: async ([diskCid, size], call) =>
      (await call.backend()).resizeDisk(diskCid as string, size as number),
  },
  update_disk: {
    args: [arg('disk_cid', cid()), arg('new_size', diskMiB()), arg('cloud_properties', cloudProperties())],
    run: async ([diskCid, size, props], call) => {
      const backend = await call.backend();
      if (!backend.updateDisk) throw notSupported('update_disk is not supported by this backend');
      return (
        (await backend.updateDisk(diskCid as string, size as number, props as Record<string, unknown>)) ??
        null
      );
    },
  },
  attach_disk: {
    args: [arg('vm_cid', cid()), arg('disk_cid', cid())],
    run: async ([vmCid, diskCid], call) => {
      const hint = requireHint(await (await call.backend()).attachDisk(vmCid as string, diskCid as string));
      return call.apiVersion >= 2 ? hint : null;
    },
  },
  detach_disk: {
    args: [arg('vm_cid', cid()), arg('disk_cid', cid())],
    run: async ([vmCid, diskCid], call) =>
      (await call.backend()).detachDisk(vmCid as string, diskCid as string),
  },
  set_disk_metadata: {
    args: [arg('disk_cid', cid()), arg('metadata', metadata())],
    run: async ([diskCid, meta], call) =>
      (await call.backend()).setDiskMetadata(diskCid as string, meta as Metadata),
  },
  get_disks: {
    args: [arg('vm_cid', cid())],
    run: async ([vmCid], call) => [...(await (await call.backend()).getDisks(vmCid as string))],
  },

  snapshot_disk: {
    args: [arg('disk_cid', cid()), arg('metadata', metadata(), true)],
    run: async ([diskCid, meta], call) => {
      const backend = await call.backend();
      if (!backend.snapshotDisk) throw unsupportedBy('snapshot_disk');
      return backend.snapshotDisk(diskCid as string, (meta ?? {}) as Metadata);
    },
  },
  delete_snapshot: {
    args: [arg('snapshot_cid', cid())],
    run: async ([snapshotCid], call) => {
      const backend = await call.backend();
      if (!backend.deleteSnapshot) throw unsupportedBy('delete_snapshot');
      return backend.deleteSnapshot(snapshotCid as string);
    },
  },

  create_network: {
    args: [
      arg(
        'network_definition',
        object({
          type: str({ nonEmpty: true }),
          cloud_properties: optional(cloudProperties(), {}),
          range: optional(str()),
          gateway: optional(str()),
          netmask_bits: optional(int({ min: 0, max: 128 })),
        }),
      ),
    ],
    run: async ([definition], call) => {
      const backend = await call.backend();
      if (!backend.createNetwork) throw unsupportedBy('create_network');
      return backend.createNetwork(definition as NetworkDefinition);
    },
  },
  delete_network: {
    args: [arg('network_id', cid())],
    run: async ([networkId], call) => {
      const backend = await call.backend();
      if (!backend.deleteNetwork) throw unsupportedBy('delete_network');
      return backend.deleteNetwork(networkId as string);
    },
  },

  current_vm_id: {
    args: [],
    run: async () => {
      throw notImplemented('current_vm_id is deprecated and not implemented');
    },
  },
};
