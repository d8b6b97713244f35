import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cpi, writeConfig } from './cpi.ts';
import { ensureDockerRunning, freeSubnet, removeAllFor, removeDataDir } from './docker.ts';
import { buildStemcell } from './stemcell.ts';

export interface DockerFixture {
  cpi: Cpi;
  director: string;
  dataDir: string;
  configPath: string;
  stemcell: string;
  /** The stemcell tarball's image, to import it again under another CID. */
  stemcellImagePath: string;
  subnet: ReturnType<typeof freeSubnet>;
  manual(host: number, extra?: Record<string, unknown>): Record<string, unknown>;
  cleanup(): Promise<void>;
}

/** A CPI config of its own (director id, data dir, subnet) and an imported test stemcell. */
export async function dockerFixture(
  name: string,
  extraProperties: Record<string, unknown> = {},
): Promise<DockerFixture> {
  ensureDockerRunning();
  const director = `${name}-${randomUUID().slice(0, 8)}`;
  const dataDir = `/var/lib/bosh-cpi-test-${director}`;
  const work = mkdtempSync(join(tmpdir(), `cpi-${name}-`));
  const configPath = writeConfig({
    docker: { data_dir: dataDir, ...extraProperties },
    agent: { mbus: 'nats://nats:nats-secret-password@127.0.0.1:4222', ntp: ['ntp.example.invalid'] },
  });
  const cpi = new Cpi(configPath, 2);
  const built = buildStemcell(join(work, 'stemcell'));
  const stemcell = await cpiAs(cpi, director).call<string>('create_stemcell', [built.imagePath, {}]);
  const subnet = freeSubnet('10.251');
  return {
    cpi: cpiAs(cpi, director),
    director,
    dataDir,
    configPath,
    stemcell,
    stemcellImagePath: built.imagePath,
    subnet,
    manual: (host, extra = {}) => ({
      default: {
        type: 'manual',
        ip: subnet.ip(host),
        netmask: '255.255.255.0',
        gateway: subnet.gateway,
        dns: ['127.0.0.53'],
        default: ['dns', 'gateway'],
        cloud_properties: {},
        ...extra,
      },
    }),
    async cleanup() {
      removeAllFor(director);
      removeDataDir(dataDir);
      rmSync(work, { recursive: true, force: true });
      rmSync(configPath, { force: true });
    },
  };
}

/** The same CPI, sending this fixture's director uuid in every request's context. */
function cpiAs(cpi: Cpi, director: string): Cpi {
  const bound = new Cpi(cpi.configPath, cpi.apiVersion);
  bound.context = { director_uuid: director };
  return bound;
}
