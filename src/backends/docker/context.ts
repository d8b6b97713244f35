import type { AgentConfig } from '../../cpi/types.ts';
import type { Logger } from '../../log/logger.ts';
import type { DockerProperties } from './config.ts';
import type { DockerClient } from './engine/client.ts';
import { Containers } from './engine/containers.ts';
import { Images } from './engine/images.ts';
import { DockerNetworks } from './engine/networks.ts';
import { Volumes } from './engine/volumes.ts';
import { HostHelper } from './helper.ts';

/** Everything one call of the Docker backend works with, built once per process. */
export class DockerContext {
  readonly containers: Containers;
  readonly images: Images;
  readonly networks: DockerNetworks;
  readonly volumes: Volumes;
  readonly host: HostHelper;

  constructor(
    readonly docker: DockerClient,
    readonly props: DockerProperties,
    readonly agent: AgentConfig,
    readonly directorUuid: string,
    readonly logger: Logger,
  ) {
    this.containers = new Containers(docker);
    this.images = new Images(docker);
    this.networks = new DockerNetworks(docker);
    this.volumes = new Volumes(docker);
    this.host = new HostHelper(docker, props.data_dir, props.helper_image, logger);
  }
}
