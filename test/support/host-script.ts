import { spawnSync } from 'node:child_process';
import { hostScript } from '../../src/backends/docker/host-script.ts';

/**
 * Runs one operation of the Docker host script directly in a scratch data_dir, with the local sh:
 * no helper, no nsenter (for operations that need no mount).
 */
export function runHostScript(dataDir: string, op: string, args: string[]) {
  const r = spawnSync('sh', ['-c', hostScript(), 'sh', op, dataDir, ...args], { encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr.trim() };
}
