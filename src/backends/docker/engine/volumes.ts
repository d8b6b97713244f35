import type { DockerClient } from './client.ts';

/** /volumes endpoints. */
export class Volumes {
  constructor(private readonly docker: DockerClient) {}

  async create(name: string, labels: Record<string, string>): Promise<void> {
    await this.docker.call('POST', '/volumes/create', `Creating volume '${name}'`, {
      body: { Name: name, Labels: labels },
    });
  }

  async remove(name: string): Promise<'removed' | 'absent' | 'in-use'> {
    const res = await this.docker.call(
      'DELETE',
      `/volumes/${encodeURIComponent(name)}`,
      `Removing volume '${name}'`,
      {
        accept: [404, 409],
      },
    );
    return res.status === 404 ? 'absent' : res.status === 409 ? 'in-use' : 'removed';
  }

  async list(labels: string[]): Promise<Array<{ Name: string; Labels: Record<string, string> | null }>> {
    const res = await this.docker.json<{
      Volumes: Array<{ Name: string; Labels: Record<string, string> | null }> | null;
    }>('GET', '/volumes', 'Listing volumes', { query: { filters: JSON.stringify({ label: labels }) } });
    return res.Volumes ?? [];
  }
}
