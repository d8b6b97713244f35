import type { Backend, BackendContext, BackendModule } from '../../cpi/backend.ts';
import { calculateVmCloudProperties } from '../../cpi/cloud-properties.ts';
import { guardBackend } from '../../cpi/guard.ts';
import { CpiFailure, cloudError } from '../../rpc/errors.ts';
import { loadTls, parseDockerProperties } from './config.ts';
import { DockerContext } from './context.ts';
import * as disks from './disks.ts';
import { DockerApiError, DockerClient } from './engine/client.ts';
import { TransportError } from './engine/transport.ts';
import { hostsBackend } from './hosts/backend.ts';
import { HostPool, hostSpecs } from './hosts/pool.ts';
import * as managedNetworks from './managed-networks.ts';
import * as stemcells from './stemcells.ts';
import * as vms from './vms.ts';

/** Engine failures become CloudErrors that name the host and the cause; unreachable hosts may be retried. */
function toCpiFailure(e: unknown): unknown {
  if (e instanceof CpiFailure) return e;
  if (e instanceof TransportError) return cloudError(`Docker host ${e.endpoint}: ${e.message}`, true);
  if (e instanceof DockerApiError) return cloudError(e.message, e.status >= 500);
  return e;
}

/** The backend of one Docker host, speaking the IDs that host knows (no `@host` part). */
export function singleHostBackend(ctx: DockerContext): Backend {
  return {
    createStemcell: (path, cloudProps, tags) => stemcells.createStemcell(ctx, path, cloudProps, tags),
    deleteStemcell: (cid) => stemcells.deleteStemcell(ctx, cid),
    createVm: (input) => vms.createVm(ctx, input),
    deleteVm: (cid) => vms.deleteVm(ctx, cid),
    hasVm: async (cid) => (await vms.findVm(ctx, cid)) !== undefined,
    rebootVm: (cid) => vms.rebootVm(ctx, cid),
    setVmMetadata: (cid, metadata) => vms.setVmMetadata(ctx, cid, metadata),
    calculateVmCloudProperties,
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
    close: () => ctx.docker.close(),
  };
}

/**
 * One Docker host (`docker.host`) or several (`docker.hosts`): either way calls go through the
 * host pool, which routes each to the engine its cloud IDs name (see hosts/).
 */
export function create(context: BackendContext): Backend {
  const props = parseDockerProperties(context.properties);
  const { specs, qualifiedIds } = hostSpecs(props);
  const pool = new HostPool(
    specs,
    qualifiedIds,
    (spec, tls, logger) => {
      const client = new DockerClient(spec.endpoint, tls, spec.apiVersion);
      const hostProps = { ...props, host: spec.endpoint, tls: spec.tls, data_dir: spec.dataDir };
      const ctx = new DockerContext(client, hostProps, context.agent, context.directorUuid, logger);
      // The pool names the host in every engine error (see hosts/pool.ts).
      return { context: ctx, backend: singleHostBackend(ctx) };
    },
    (spec) => loadTls(spec, spec.tlsPath),
    context.logger,
  );
  return guardBackend(hostsBackend(pool), toCpiFailure);
}

export default { create } satisfies BackendModule;
