import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The Bun binary of the `bun` npm package: its postinstall moves the platform package's binary to
 * bun/bin/bun.exe; without install scripts it is still in the platform package.
 */
export function bunBinary() {
  const candidates = [
    join(REPO, 'node_modules', '@oven', `bun-${process.platform}-${process.arch}`, 'bin', 'bun'),
    join(REPO, 'node_modules', 'bun', 'bin', 'bun.exe'),
  ];
  const bin = candidates.find((c) => existsSync(c) && statSync(c).size > 1 << 20);
  if (!bin) throw new Error(`no Bun binary at ${candidates.join(' or ')}: run npm ci (or npm install) first`);
  return bin;
}
