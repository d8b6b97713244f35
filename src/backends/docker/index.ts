import type { Backend, BackendContext, BackendModule } from '../../cpi/backend.ts';
import { CpiFailure, cloudError } from '../../rpc/errors.ts';
import { loadTls, parseDockerProperties } from './config.ts';
import { DockerContext } from './context.ts';
import * as disks from './disks.ts';
import { DockerApiError, DockerClient } from './engine/client.ts';
import { TransportError } from './engine/transport.ts';
import * as managedNetworks from './managed-networks.ts';
import * as stemcells from './stemcells.ts';
import * as vms from './vms.ts';

/** Engine failures become CloudErrors that name the host and the cause; unreachable hosts may be retried. */
function toCpiFailure(e: unknown, endpoint: string): unknown {
  if (e instanceof CpiFailure) return e;
  if (e instanceof TransportError) return cloudError(`Docker host ${e.endpoint}: ${e.message}`, true);
  // Name the engine: with several Docker hosts (or an engine restarting) "HTTP 500" alone says nothing.
  if (e instanceof DockerApiError)
    return cloudError(`Docker host ${endpoint}: ${e.message}`, e.status >= 500);
  return e;
}

function guarded<T extends object>(target: T, endpoint: string): T {
  return new Proxy(target, {
    get(obj, key, receiver) {
      const value = Reflect.get(obj, key, receiver);
      if (typeof value !== 'function' || key === 'close' || key === 'calculateVmCloudProperties')
        return value;
      return async (...args: unknown[]) => {
        try {
          return await value.apply(obj, args);
        } catch (e) {
          throw toCpiFailure(e, endpoint);
        }
      };
    },
  });
}

export function create(context: BackendContext): Backend {
  const props = parseDockerProperties(context.properties);
  const client = new DockerClient(props.host, loadTls(props), props.api_version);
  const ctx = new DockerContext(client, props, context.agent, context.directorUuid, context.logger);
  const backend: Backend = {
    createStemcell: (path, cloudProps, tags) => stemcells.createStemcell(ctx, path, cloudProps, tags),
    deleteStemcell: (cid) => stemcells.deleteStemcell(ctx, cid),
    createVm: (input) => vms.createVm(ctx, input),
    deleteVm: (cid) => vms.deleteVm(ctx, cid),
    hasVm: async (cid) => (await vms.findVm(ctx, cid)) !== undefined,
    rebootVm: (cid) => vms.rebootVm(ctx, cid),
    setVmMetadata: (cid, metadata) => vms.setVmMetadata(ctx, cid, metadata),
    calculateVmCloudProperties: (resources) => vms.calculateVmCloudProperties(resources),
    createDisk: (size, cloudProps, vmCid) => disks.createDisk(ctx, size, cloudProps, vmCid),
    deleteDisk: (cid) => disks.deleteDisk(ctx, cid),
    hasDisk: (cid) => disks.hasDisk(ctx, cid),
    attachDisk: (vmCid, diskCid) => disks.attachDisk(ctx, vmCid, diskCid),
    detachDisk: (vmCid, diskCid) => disks.detachDisk(ctx, vmCid, diskCid),
    setDiskMetadata: (cid, metadata) => disks.setDiskMetadata(ctx, cid, metadata),
    getDisks: (vmCid) => disks.getDisks(ctx, vmCid),
    resizeDisk: (cid, size) => disks.resizeDisk(ctx, cid, size),
    updateDisk: async (cid, size) => {
      await disks.resizeDisk(ctx, cid, size);
      return cid;
    },
    snapshotDisk: (cid, metadata) => disks.snapshotDisk(ctx, cid, metadata),
    deleteSnapshot: (cid) => disks.deleteSnapshot(ctx, cid),
    createNetwork: (definition) => managedNetworks.createNetwork(ctx, definition),
    deleteNetwork: (id) => managedNetworks.deleteNetwork(ctx, id),
    close: () => client.close(),
  };
  return guarded(backend, props.host);
}

export default { create } satisfies BackendModule;
