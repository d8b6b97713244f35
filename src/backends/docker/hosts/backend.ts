import type { Backend, Capabilities, ManagedNetworks } from '../../../cpi/backend.ts';
import { calculateVmCloudProperties } from '../../../cpi/cloud-properties.ts';
import type { NetworkId } from '../../../cpi/types.ts';
import { CpiFailure, cloudError, ErrorType, notImplemented, vmCreationFailed } from '../../../rpc/errors.ts';
import { type Cid, optionalCid } from '../../../util/cloud-ids.ts';
import { type IdKind, newId } from '../ids.ts';
import * as managedNetworks from '../managed-networks.ts';
import { leastLoaded, placeVm } from './placement.ts';
import type { DockerHost, HostPool, Located } from './pool.ts';
import * as stemcells from './stemcells.ts';

const messageOf = (e: unknown) => (e instanceof Error ? e.message : String(e));

/** A capability every single-host Docker backend has (see ../index.ts). */
function hostCapability<K extends keyof Capabilities>(b: Backend, name: K): NonNullable<Capabilities[K]> {
  const found = b.capabilities[name];
  if (!found) throw notImplemented(`The Docker backend has no ${name}`);
  return found;
}

/**
 * The Docker backend over several engines. Every call goes straight to the host its cloud IDs
 * name (no host is asked where something is); create_vm and create_disk choose a host; stemcells
 * and Director-managed networks exist on every host under one ID. Each host's work is done by
 * the single-host backend in the IDs that host knows.
 */
export function hostsBackend(pool: HostPool, failure: (error: unknown) => CpiFailure): Backend {
  const log = pool.logger;

  /** Runs `step` on the host a cloud ID names, with the host-local ID. */
  const onId = async <K extends IdKind, T>(
    kind: K,
    cid: Cid<K>,
    step: (b: Backend, local: Cid<K>, at: Located<K>) => Promise<T>,
  ): Promise<T> => {
    const at = pool.locate(kind, cid);
    return pool.on(at.host, (h) => step(h.backend, at.local, at), [[at.local, cid]]);
  };

  const mismatch = (vm: Located<'vm'>, disk: Located<'disk'>) =>
    vm.valid && disk.valid && vm.host !== disk.host;

  const createVm: Backend['createVm'] = async (input) => {
    try {
      const { host, reason } = await placeVm(pool, input);
      if (pool.hosts.length > 1)
        log.info(`Placing the VM of agent '${input.agentId}' on Docker host '${host.name}': ${reason}`);
      const disks = input.diskCids.map((cid) => ({ cid, at: pool.locate('disk', cid) }));
      const elsewhere = disks.filter((d) => d.at.valid && d.at.host !== host).map((d) => d.cid);
      if (elsewhere.length)
        log.warn(
          `Disks ${elsewhere.join(', ')} are not on Docker host '${host.name}': attach_disk will refuse them (disks stay on their host)`,
        );
      const ids = disks.map((d) => [d.at.local, d.cid]);
      return await pool.on(
        host,
        async (h) => {
          await stemcells.ensureStemcell(pool, h, input.stemcellCid);
          const created = await h.backend.createVm({ ...input, diskCids: disks.map((d) => d.at.local) });
          return { ...created, vmCid: pool.cid(h, created.vmCid) };
        },
        ids,
      );
    } catch (e) {
      // The Director retries only VMCreationFailed (when ok_to_retry): keep every failure of create_vm one.
      if (e instanceof CpiFailure && e.type === ErrorType.CloudError)
        throw vmCreationFailed(e.message, e.okToRetry);
      throw e;
    }
  };

  const createDisk: Backend['createDisk'] = async (sizeMiB, props, vmCid) => {
    const vm = vmCid ? pool.locate('vm', vmCid) : undefined;
    const snapshotCid = optionalCid('snap', props.snapshot_cid);
    const snapshot = snapshotCid ? pool.locate('snap', snapshotCid) : undefined;
    if (vm?.valid && snapshot?.valid && vm.host !== snapshot.host)
      throw cloudError(
        `Snapshot '${props.snapshot_cid}' is on Docker host '${snapshot.host.name}' but VM '${vmCid}' is on '${vm.host.name}': ` +
          "a disk restored from a snapshot stays on the snapshot's host",
      );
    let host: DockerHost;
    let reason: string;
    if (vm?.valid) [host, reason] = [vm.host, `next to VM ${vmCid}`];
    else if (snapshot?.valid) [host, reason] = [snapshot.host, `where snapshot ${props.snapshot_cid} is`];
    else if (pool.hosts.length === 1) [host, reason] = [pool.first, 'the only host'];
    else {
      const placement = await leastLoaded(pool, 'a disk');
      [host, reason] = [placement.host, placement.reason];
    }
    if (pool.hosts.length > 1) log.info(`Creating the disk on Docker host '${host.name}': ${reason}`);
    const localProps = snapshot ? { ...props, snapshot_cid: snapshot.local } : props;
    const ids = [
      vm ? [vm.local, vmCid ?? ''] : [],
      snapshot ? [snapshot.local, String(props.snapshot_cid)] : [],
    ];
    return pool.on(
      host,
      async (h) => pool.cid(h, await h.backend.createDisk(sizeMiB, localProps, vm ? vm.local : vmCid)),
      ids,
    );
  };

  /** Disks never move between hosts: attaching one to a VM on another host is refused, naming both. */
  const attachDisk: Backend['attachDisk'] = async (vmCid, diskCid) => {
    const vm = pool.locate('vm', vmCid);
    const disk = pool.locate('disk', diskCid);
    if (mismatch(vm, disk))
      throw cloudError(
        `Disk '${diskCid}' is on Docker host '${disk.host.name}' and VM '${vmCid}' on Docker host '${vm.host.name}': ` +
          `a persistent disk stays on its host. Create the VM next to it (create_vm with the disk in disk_cids, ` +
          `or cloud_properties.host: ${disk.host.name}), or let the Director copy the data to a new disk on '${vm.host.name}'`,
      );
    return pool.on(vm.host, (h) => h.backend.attachDisk(vm.local, disk.local), [
      [vm.local, vmCid],
      [disk.local, diskCid],
    ]);
  };

  const detachDisk: Backend['detachDisk'] = async (vmCid, diskCid) => {
    const vm = pool.locate('vm', vmCid);
    const disk = pool.locate('disk', diskCid);
    if (mismatch(vm, disk))
      throw new CpiFailure(
        ErrorType.DiskNotAttached,
        `Disk '${diskCid}' is not attached to VM '${vmCid}': the disk is on Docker host '${disk.host.name}', the VM on '${vm.host.name}'`,
      );
    return pool.on(vm.host, (h) => h.backend.detachDisk(vm.local, disk.local), [
      [vm.local, vmCid],
      [disk.local, diskCid],
    ]);
  };

  /** Director-managed networks exist on every host under one ID (all or none). */
  const createNetwork: ManagedNetworks['createNetwork'] = async (definition) => {
    const create = (h: DockerHost, id?: NetworkId) =>
      managedNetworks.createNetwork(h.context, definition, id);
    if (pool.hosts.length === 1) return pool.on(pool.first, (h) => create(h));
    const id = newId('net');
    const outcomes = await Promise.allSettled(pool.hosts.map((host) => pool.on(host, (h) => create(h, id))));
    const failed = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed.length) {
      await Promise.allSettled(
        pool.hosts.map((host, i) =>
          outcomes[i]?.status === 'fulfilled' ? managedNetworks.deleteNetwork(host.context, id) : undefined,
        ),
      );
      throw cloudError(
        `Creating network ${id} on every Docker host failed: ${failed.map((f) => messageOf(f.reason)).join('; ')}`,
        failed.some((f) => f.reason instanceof CpiFailure && f.reason.okToRetry),
      );
    }
    return (outcomes[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof create>>>).value;
  };

  const deleteNetwork: ManagedNetworks['deleteNetwork'] = async (id) => {
    const remove = (host: DockerHost) => pool.on(host, (h) => managedNetworks.deleteNetwork(h.context, id));
    if (pool.hosts.length === 1) return remove(pool.first);
    const outcomes = await Promise.allSettled(pool.hosts.map(remove));
    const failures = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
    const notFound = failures.filter(
      (f) => f.reason instanceof CpiFailure && f.reason.type === ErrorType.NetworkNotFound,
    );
    const other = failures.filter((f) => !notFound.includes(f));
    if (other.length) throw other[0]?.reason;
    if (notFound.length === pool.hosts.length) throw notFound[0]?.reason;
  };

  return {
    createStemcell: (path, props, tags) => stemcells.createStemcell(pool, path, props, tags),
    deleteStemcell: (cid) => stemcells.deleteStemcell(pool, cid),
    createVm,
    deleteVm: (cid) => onId('vm', cid, (b, local) => b.deleteVm(local)),
    hasVm: (cid) => onId('vm', cid, (b, local) => b.hasVm(local)),
    rebootVm: (cid) => onId('vm', cid, (b, local) => b.rebootVm(local)),
    setVmMetadata: (cid, metadata) => onId('vm', cid, (b, local) => b.setVmMetadata(local, metadata)),
    calculateVmCloudProperties,
    createDisk,
    deleteDisk: (cid) => onId('disk', cid, (b, local) => b.deleteDisk(local)),
    hasDisk: (cid) => onId('disk', cid, (b, local) => b.hasDisk(local)),
    attachDisk,
    detachDisk,
    setDiskMetadata: (cid, metadata) => onId('disk', cid, (b, local) => b.setDiskMetadata(local, metadata)),
    getDisks: (vmCid) =>
      onId('vm', vmCid, async (b, local, at) => (await b.getDisks(local)).map((d) => pool.cid(at.host, d))),
    resizeDisk: (cid, size) => onId('disk', cid, (b, local) => b.resizeDisk(local, size)),
    capabilities: {
      diskUpdater: {
        updateDisk: (cid, size, props) =>
          onId('disk', cid, async (b, local, at) => {
            const updated = await hostCapability(b, 'diskUpdater').updateDisk(local, size, props);
            return updated === null ? null : pool.cid(at.host, updated);
          }),
      },
      snapshots: {
        snapshotDisk: (cid, metadata) =>
          onId('disk', cid, async (b, local, at) =>
            pool.cid(at.host, await hostCapability(b, 'snapshots').snapshotDisk(local, metadata)),
          ),
        deleteSnapshot: (cid) =>
          onId('snap', cid, (b, local) => hostCapability(b, 'snapshots').deleteSnapshot(local)),
      },
      managedNetworks: { createNetwork, deleteNetwork },
    },
    failure,
    close: () => pool.close(),
  };
}
