import type { Backend, Capabilities } from '../cpi/backend.ts';
import { boundedInt, cpuCount, diskMiB, LIMITS, ramMiB } from '../cpi/cloud-properties.ts';
import type { DiskHint, Metadata } from '../cpi/types.ts';
import { type Check, int, nullable, object, optional, str } from '../util/check.ts';
import { requestCid } from '../util/cloud-ids.ts';
import { cloudProperties, diskCids, metadata, networks, vmEnv } from './arguments.ts';
import { cloudError, notImplemented, notSupported } from './errors.ts';

export interface Call {
  apiVersion: number;
  stemcellFormats: readonly string[];
  backend(): Promise<Backend>;
}

/** One positional argument: its name (for messages) and the check that types it. */
export interface Argument<T> {
  name: string;
  check: Check<T>;
  /** Present when the argument may be left out at the end of the list (older callers send fewer). */
  fallback?: { value: T };
}

/** What the dispatcher knows of a method: its arguments, and how to run it on their checked values. */
export interface MethodDefinition {
  args: readonly Argument<unknown>[];
  run(checked: unknown[], call: Call): Promise<unknown>;
}

type Values<A extends readonly Argument<unknown>[]> = {
  -readonly [K in keyof A]: A[K] extends Argument<infer T> ? T : never;
};

const arg = <T>(name: string, check: Check<T>): Argument<T> => ({ name, check });
const optionalArg = <T>(name: string, check: Check<T>, value: T): Argument<T> => ({
  name,
  check,
  fallback: { value },
});

/**
 * A method whose implementation receives the values its argument checks produced, typed by
 * those checks. The dispatcher runs the checks in order (checkArguments), which is what makes
 * the one conversion below hold.
 */
function method<const A extends readonly Argument<unknown>[]>(
  args: A,
  run: (values: Values<A>, call: Call) => Promise<unknown>,
): MethodDefinition {
  return { args, run: (checked, call) => run(checked as Values<A>, call) };
}

/**
 * A method that needs the backend: whatever it throws passes through the backend's one error
 * boundary (Backend.failure), so the caller always gets a CpiFailure naming the cause.
 */
function onBackend<const A extends readonly Argument<unknown>[]>(
  args: A,
  run: (values: Values<A>, backend: Backend, call: Call) => Promise<unknown>,
): MethodDefinition {
  return method(args, async (values, call) => {
    const backend = await call.backend();
    try {
      return await run(values, backend, call);
    } catch (e) {
      throw backend.failure(e);
    }
  });
}

/** An optional ability of the backend; a missing one is always NotImplemented (see Capabilities). */
function capability<K extends keyof Capabilities>(
  backend: Backend,
  name: K,
  methodName: string,
): NonNullable<Capabilities[K]> {
  const found = backend.capabilities[name];
  if (!found) throw notImplemented(`Method '${methodName}' is not implemented by this CPI's backend`);
  return found;
}

function requireHint(hint: DiskHint): DiskHint {
  const empty = typeof hint === 'string' ? hint === '' : Object.keys(hint).length === 0;
  if (empty) throw cloudError('The backend returned an empty disk hint');
  return hint;
}

const tagsArgument = (): Check<Metadata> => (v, path) => {
  const env = nullable(object({ tags: optional(metadata(), {}) }))(v, path);
  return env?.tags ?? {};
};

const vmCid = () => arg('vm_cid', requestCid('vm'));
const diskCid = () => arg('disk_cid', requestCid('disk'));

/** Every CPI method: its arguments and how its result is shaped for the caller's API version. */
export const METHODS: Record<string, MethodDefinition> = {
  info: method([], async (_values, call) => ({
    stemcell_formats: [...call.stemcellFormats],
    api_version: 3,
  })),

  create_stemcell: onBackend(
    [
      arg('image_path', str({ nonEmpty: true })),
      arg('cloud_properties', cloudProperties()),
      optionalArg('env', tagsArgument(), {}),
    ],
    ([imagePath, props, tags], backend) => backend.createStemcell(imagePath, props, tags),
  ),
  delete_stemcell: onBackend([arg('stemcell_cid', requestCid('stemcell'))], ([stemcellCid], backend) =>
    backend.deleteStemcell(stemcellCid),
  ),

  create_vm: onBackend(
    [
      arg('agent_id', str({ nonEmpty: true })),
      arg('stemcell_cid', requestCid('stemcell')),
      arg('cloud_properties', cloudProperties()),
      arg('networks', networks()),
      optionalArg('disk_cids', diskCids(), []),
      optionalArg('env', vmEnv(), {}),
    ],
    async ([agentId, stemcellCid, props, nets, disks, env], backend, call) => {
      const created = await backend.createVm({
        agentId,
        stemcellCid,
        cloudProperties: props,
        networks: nets,
        diskCids: disks,
        env,
      });
      return call.apiVersion >= 2 ? [created.vmCid, created.networks] : created.vmCid;
    },
  ),
  delete_vm: onBackend([vmCid()], ([cid], backend) => backend.deleteVm(cid)),
  has_vm: onBackend([vmCid()], async ([cid], backend) => (await backend.hasVm(cid)) === true),
  reboot_vm: onBackend([vmCid()], ([cid], backend) => backend.rebootVm(cid)),
  set_vm_metadata: onBackend([vmCid(), arg('metadata', metadata())], ([cid, meta], backend) =>
    backend.setVmMetadata(cid, meta),
  ),
  configure_networks: method([vmCid(), arg('networks', networks())], async () => {
    throw notSupported('configure_networks is not supported: the VM is recreated with its new networks');
  }),
  calculate_vm_cloud_properties: onBackend(
    [
      arg(
        'desired_instance_size',
        object({ cpu: cpuCount(), ram: ramMiB(), ephemeral_disk_size: boundedInt(0, LIMITS.diskMiB, 'MiB') }),
      ),
    ],
    async ([size], backend) => backend.calculateVmCloudProperties(size),
  ),

  create_disk: onBackend(
    [
      arg('size', diskMiB()),
      arg('cloud_properties', cloudProperties()),
      optionalArg('vm_cid', nullable(requestCid('vm')), null),
    ],
    ([size, props, vm], backend) => backend.createDisk(size, props, vm),
  ),
  delete_disk: onBackend([diskCid()], ([cid], backend) => backend.deleteDisk(cid)),
  has_disk: onBackend([diskCid()], async ([cid], backend) => (await backend.hasDisk(cid)) === true),
  resize_disk: onBackend([diskCid(), arg('new_size', diskMiB())], ([cid, size], backend) =>
    backend.resizeDisk(cid, size),
  ),
  update_disk: onBackend(
    [diskCid(), arg('new_size', diskMiB()), arg('cloud_properties', cloudProperties())],
    async ([cid, size, props], backend) =>
      (await capability(backend, 'diskUpdater', 'update_disk').updateDisk(cid, size, props)) ?? null,
  ),
  attach_disk: onBackend([vmCid(), diskCid()], async ([vm, disk], backend, call) => {
    const hint = requireHint(await backend.attachDisk(vm, disk));
    return call.apiVersion >= 2 ? hint : null;
  }),
  detach_disk: onBackend([vmCid(), diskCid()], ([vm, disk], backend) => backend.detachDisk(vm, disk)),
  set_disk_metadata: onBackend([diskCid(), arg('metadata', metadata())], ([cid, meta], backend) =>
    backend.setDiskMetadata(cid, meta),
  ),
  get_disks: onBackend([vmCid()], async ([cid], backend) => [...(await backend.getDisks(cid))]),

  snapshot_disk: onBackend([diskCid(), optionalArg('metadata', metadata(), {})], ([cid, meta], backend) =>
    capability(backend, 'snapshots', 'snapshot_disk').snapshotDisk(cid, meta),
  ),
  delete_snapshot: onBackend([arg('snapshot_cid', requestCid('snap'))], ([cid], backend) =>
    capability(backend, 'snapshots', 'delete_snapshot').deleteSnapshot(cid),
  ),

  create_network: onBackend(
    [
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
    async ([definition], backend) => {
      const created = await capability(backend, 'managedNetworks', 'create_network').createNetwork(
        definition,
      );
      return [created.networkId, created.details, created.cloudProperties];
    },
  ),
  delete_network: onBackend([arg('network_id', requestCid('net'))], ([id], backend) =>
    capability(backend, 'managedNetworks', 'delete_network').deleteNetwork(id),
  ),

  current_vm_id: method([], async () => {
    throw notImplemented('current_vm_id is deprecated and not implemented');
  }),
};
