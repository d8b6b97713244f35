import { assembleBackend } from '../../cpi/assemble.ts';
import type { Backend, BackendContext, BackendModule } from '../../cpi/backend.ts';
import { isInsecureEndpoint, loadTls, parseDockerProperties } from './config.ts';
import { DockerContext } from './context.ts';
import * as disks from './disks.ts';
import { DockerClient } from './engine/client.ts';
import { toCpiFailure } from './failure.ts';
import { hostsBackend } from './hosts/backend.ts';
import { HostPool, hostSpecs } from './hosts/pool.ts';
import * as managedNetworks from './managed-networks.ts';
import * as stemcells from './stemcells.ts';
import * as vms from './vms.ts';

/** The backend of one Docker host, speaking the IDs that host knows (no `@host` part). */
export function singleHostBackend(ctx: DockerContext): Backend {
  return assembleBackend({
    context: ctx,
    methods: { ...stemcells, ...vms, ...disks },
    diskUpdater: disks,
    snapshots: disks,
    managedNetworks,
    failure: (e) => toCpiFailure(e),
    close: () => ctx.docker.close(),
  });
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
      if (isInsecureEndpoint(spec.endpoint, spec.tls))
        logger.warn(
          `Docker host ${spec.endpoint} is reached without TLS (docker.allow_insecure_tcp): whoever reaches that port is root on that host`,
        );
      const client = new DockerClient(spec.endpoint, tls, spec.apiVersion);
      const hostProps = { ...props, host: spec.endpoint, tls: spec.tls, data_dir: spec.dataDir };
      const ctx = new DockerContext(client, hostProps, context.agent, context.directorUuid, logger);
      // The pool names the host in every engine error (see hosts/pool.ts).
      return { context: ctx, backend: singleHostBackend(ctx) };
    },
    (spec) => loadTls(spec, spec.tlsPath),
    context.logger,
  );
  return hostsBackend(pool, (e) => toCpiFailure(e));
}

export default { create } satisfies BackendModule;
