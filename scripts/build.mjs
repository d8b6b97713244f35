// Builds what bin/cpi runs, in two steps:
//   1. esbuild bundles src/ into one CommonJS file, dist/cpi.cjs (also what the release compiles);
//   2. Bun compiles that bundle with its bytecode into one executable, dist/cpi: ~7 ms per call
//      against ~35 ms for the bundle on Node (bench/README.md, "Start-up").
// The Bun compiler comes from the npm package `bun` (a devDependency pinned in package-lock.json).
import { spawnSync } from 'node:child_process';
import { renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { bunBinary } from './bun-binary.mjs';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
const BUNDLE = join(REPO, 'dist', 'cpi.cjs');
const EXECUTABLE = join(REPO, 'dist', 'cpi');

await build({
  entryPoints: [join(REPO, 'src/main.ts')],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outfile: BUNDLE,
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
});

// Compiled next to the target and renamed over it: a CPI call running meanwhile keeps its old file.
const partial = `${EXECUTABLE}.partial`;
rmSync(partial, { force: true });
const compile = spawnSync(
  bunBinary(),
  [
    'build',
    '--compile',
    '--bytecode',
    '--minify',
    '--sourcemap=none',
    // A compiled Bun executable would otherwise read .env and bunfig.toml from its working directory.
    '--no-compile-autoload-dotenv',
    '--no-compile-autoload-bunfig',
    // Each call is a short process: code tiers up to the JIT after 10× the usual calls, so a call
    // spends less on compiling what it runs a few times (~1 ms of ~10; bench/README.md). A long
    // loop still reaches the JIT within a moment.
    '--compile-jit-policy=10',
    BUNDLE,
    '--outfile',
    partial,
  ],
  { cwd: REPO, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
);
if (compile.status !== 0) {
  rmSync(partial, { force: true });
  process.stderr.write(compile.stdout + compile.stderr);
  throw new Error(`bun build --compile exited with ${compile.status ?? compile.signal}`);
}
renameSync(partial, EXECUTABLE);
