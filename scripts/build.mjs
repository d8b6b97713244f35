// Bundles the CPI into one CommonJS file: one file to parse is the cheapest start-up on Node 20.
import { build } from 'esbuild';

await build({
  entryPoints: ['src/main.ts'],
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  outfile: 'dist/cpi.cjs',
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
});
