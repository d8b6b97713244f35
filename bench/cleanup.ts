/**
 * Removes what a killed benchmark run left behind (a finished or interrupted run cleans up itself):
 *   npx tsx bench/cleanup.ts <director_uuid>        e.g. bench-fd300d6f-2caab9d3
 * The data_dir /var/lib/bosh-bench-<id> is derived from the UUID.
 */
import { sweep } from './lib/context.ts';
import { RawEngine } from './lib/engine.ts';
import { Host } from './lib/host.ts';

const uuid = process.argv[2] ?? '';
const m = /^bench-([0-9a-f]{8})-[0-9a-f]{8}$/.exec(uuid);
if (!m) {
  process.stderr.write('usage: npx tsx bench/cleanup.ts bench-<8 hex>-<8 hex>\n');
  process.exit(2);
}
const engine = new RawEngine();
await sweep(engine, new Host(), uuid, `/var/lib/bosh-bench-${m[1]}`, new Set(), (line) =>
  process.stderr.write(`${line}\n`),
);
engine.close();
