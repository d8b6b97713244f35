import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Suite } from '../../lib/env.ts';
import type { Fixture } from './corpus.ts';
/** What must never change whatever a request says: files outside data_dir, the fixture VM's container, the helper. */
export interface Outside {
  canary: string;
  etcPasswd: number;
  fixtureContainer: string | undefined;
  helper: string | undefined;
}

function hashTree(dir: string): string {
  const h = createHash('sha256');
  const visit = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      h.update(`${p}:${st.mode}:${st.mtimeMs}:${st.size}\n`);
      if (st.isDirectory()) visit(p);
      else h.update(readFileSync(p));
    }
  };
  if (existsSync(dir)) visit(dir);
  else h.update('missing');
  return h.digest('hex');
}

export async function outside(suite: Suite, f: Fixture): Promise<Outside> {
  const helper = suite.isDocker
    ? (await suite.docker.containers()).find((c) => c.Labels?.['io.bosh.cpi.role'] === 'helper')
    : undefined;
  return {
    canary: hashTree(suite.canaryDir),
    etcPasswd: statSync('/etc/passwd').mtimeMs,
    fixtureContainer: suite.isDocker ? (await suite.docker.vmContainer(f.vm))?.Id : undefined,
    helper: helper?.Id,
  };
}
