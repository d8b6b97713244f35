import type { DockerClient } from './client.ts';
import type { NetworkInspect } from './types.ts';

/** /networks endpoints. */
export class DockerNetworks {
  constructor(private readonly docker: DockerClient) {}

  async inspect(name: string): Promise<NetworkInspect | undefined> {
    return this.docker.inspect<NetworkInspect>(
      `/networks/${encodeURIComponent(name)}`,
      `Inspecting network '${name}'`,
    );
  }

  /** Returns false when a network of that name appeared meanwhile (another CPI process made it). */
  async create(spec: Record<string, unknown> & { Name: string }): Promise<boolean> {
    const res = await this.docker.call('POST', '/networks/create', `Creating network '${spec.Name}'`, {
      body: { CheckDuplicate: true, ...spec },
      accept: [409],
    });
    return res.status !== 409;
  }

  async remove(id: string): Promise<'removed' | 'absent' | 'in-use'> {
    const res = await this.docker.call(
      'DELETE',
      `/networks/${encodeURIComponent(id)}`,
      `Removing network '${id}'`,
      {
        accept: [403, 404, 409],
      },
    );
    return res.status === 404 ? 'absent' : res.status >= 400 ? 'in-use' : 'removed';
  }

  async connect(network: string, containerId: string, endpoint: Record<string, unknown>): Promise<void> {
    await this.docker.call(
      'POST',
      `/networks/${encodeURIComponent(network)}/connect`,
      `Connecting to network '${network}'`,
      {
        body: { Container: containerId, EndpointConfig: endpoint },
      },
    );
  }

  list(labels: string[]): Promise<NetworkInspect[]> {
    return this.docker.json('GET', '/networks', 'Listing networks', {
      query: { filters: JSON.stringify({ label: labels }) },
    });
  }
}
