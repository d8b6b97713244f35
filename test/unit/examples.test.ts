import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { BACKENDS } from '../../src/backends/registry.ts';
import { parseConfig } from '../../src/config/config.ts';

const EXAMPLES = join(import.meta.dirname, '../../examples');

test('every example config passes the CPI config checks of its backend', () => {
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.json'));
  assert.deepEqual(files.sort(), ['docker-several-hosts.json', 'docker-single-host.json', 'qemu.json']);
  for (const file of files) {
    const config = parseConfig(JSON.parse(readFileSync(join(EXAMPLES, file), 'utf8')), {
      director_uuid: 'd',
    });
    const backend = BACKENDS[config.plugin];
    assert.ok(backend, `${file}: plugin ${config.plugin}`);
    backend.checkProperties(config.properties[config.plugin]);
  }
});

test('the README links to every example', () => {
  const readme = readFileSync(join(EXAMPLES, '../README.md'), 'utf8');
  for (const f of readdirSync(EXAMPLES))
    assert.match(readme, new RegExp(`examples/${f.replace('.', '\\.')}`), f);
});
