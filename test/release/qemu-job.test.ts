import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { RELEASE_DIR } from '../../scripts/release.ts';
import { parseQemuProperties, qemuPropertiesCheck } from '../../src/backends/qemu/config.ts';
import { parseConfig } from '../../src/config/config.ts';
import { type JobSpec, jobSpec, loadYaml, removeTmp, renderedConfig, renderJob } from './support.ts';

const QEMU_JOB_DIR = join(RELEASE_DIR, 'jobs', 'qemu_cpi');
const qemuSpec = () => loadYaml<JobSpec>(join(QEMU_JOB_DIR, 'spec'));
const MBUS = 'https://mbus:secret@0.0.0.0:6868';

after(removeTmp);

describe('qemu_cpi job', () => {
  test('lists its templates, needs the same packages as docker_cpi, and has a monit file', () => {
    assert.deepEqual(qemuSpec().templates, { 'cpi.erb': 'bin/cpi', 'cpi.json.erb': 'config/cpi.json' });
    assert.deepEqual(readdirSync(join(QEMU_JOB_DIR, 'templates')).sort(), ['cpi.erb', 'cpi.json.erb']);
    assert.deepEqual([...qemuSpec().packages].sort(), [...jobSpec().packages].sort());
    assert.ok(readdirSync(QEMU_JOB_DIR).includes('monit'));
  });

  test('every key of the CPI qemu config is a job property, and nothing else is', () => {
    const fromSpec = Object.keys(qemuSpec().properties)
      .filter((k) => k.startsWith('qemu.'))
      .map((k) => k.slice(5))
      .sort();
    assert.deepEqual(
      fromSpec,
      Object.keys(qemuPropertiesCheck({}, 'qemu')).concat(['default_bridge', 'bridges']).sort(),
    );
  });

  test('with only agent.mbus set it renders a config the CPI accepts, with the CPI defaults', () => {
    const config = renderedConfig(renderJob({ agent: { mbus: MBUS } }, undefined, QEMU_JOB_DIR));
    assert.equal(config.cloud.plugin, 'qemu');
    assert.deepEqual(config.cloud.properties.qemu, {});
    const parsed = parseConfig(config, { director_uuid: 'd' });
    assert.deepEqual(parseQemuProperties(parsed.properties.qemu), qemuPropertiesCheck({}, 'qemu'));
  });

  test('set properties reach the config; an unknown mbus scheme fails the render naming the property', () => {
    const config = renderedConfig(
      renderJob(
        { agent: { mbus: MBUS }, qemu: { accel: 'tcg', default_bridge: 'br0', reboot_timeout_seconds: 30 } },
        undefined,
        QEMU_JOB_DIR,
      ),
    );
    assert.deepEqual(config.cloud.properties.qemu, {
      accel: 'tcg',
      default_bridge: 'br0',
      reboot_timeout_seconds: 30,
    });
    parseQemuProperties(config.cloud.properties.qemu);
    const bad = renderJob({ agent: { mbus: 'amqp://x' } }, undefined, QEMU_JOB_DIR);
    assert.equal(bad.ok, false);
    assert.match(
      bad.ok ? '' : bad.stderr,
      /qemu_cpi: property agent\.mbus must be a nats:\/\/ or https:\/\/ URL/,
    );
  });
});
