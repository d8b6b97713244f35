// Runs every test file with node's test runner (through tsx, which compiles TypeScript on the fly).
// Files are listed explicitly: Node 20 finds no .ts tests when given a directory.
// Usage: node scripts/run-tests.mjs [group ...]   groups: unit integration release qemu conformance cgroup2-smoke cgroup2
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const GROUPS = {
  unit: 'test/unit',
  release: 'test/release',
  integration: 'test/integration',
  conformance: 'test/conformance.test.ts',
  qemu: 'test/qemu',
  // A cgroup v2 Docker host booted under QEMU (TCG): all scenarios by `npm run test:cgroup2`,
  // a small form by default.
  'cgroup2-smoke': 'test/cgroup2/smoke.test.ts',
  cgroup2: 'test/cgroup2/cgroups.test.ts',
};
const DEFAULT_GROUPS = Object.keys(GROUPS).filter((g) => g !== 'cgroup2');
const wanted = process.argv.slice(2).length ? process.argv.slice(2) : DEFAULT_GROUPS;
const files = [];
for (const group of wanted) {
  const path = GROUPS[group];
  if (!path) throw new Error(`unknown test group ${group}; known: ${Object.keys(GROUPS).join(', ')}`);
  if (!existsSync(path)) continue;
  if (path.endsWith('.ts')) files.push(path);
  else for (const f of readdirSync(path).sort()) if (f.endsWith('.test.ts')) files.push(join(path, f));
}
if (files.length === 0) {
  console.error('no test files found');
  process.exit(1);
}
const run = spawnSync('npx', ['tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
});
process.exit(run.status ?? 1);
