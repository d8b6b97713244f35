import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import { cgroupDelegationScript } from '../../src/backends/docker/container-init.ts';
import {
  ENGINE_MOUNTED_FILES,
  prepareContainerScript,
  startCommand,
} from '../../src/backends/docker/start-command.ts';

describe('docker start command', () => {
  test('runit: prepares the container, then execs runsvdir-start with a clean environment', () => {
    const [shell, flag, script] = startCommand({ init: 'runit' });
    assert.deepEqual([shell, flag], ['/bin/sh', '-c']);
    assert.ok(script);
    for (const f of ENGINE_MOUNTED_FILES)
      assert.match(script, new RegExp(`umount ${f.replace(/\./g, '\\.')}`));
    assert.match(script, /mkdir -p \/var\/vcap\/store \/var\/vcap\/data\/sys/);
    assert.match(script, /; exec env -i PATH=\S+ \/usr\/sbin\/runsvdir-start$/);
    assert.equal(spawnSync('/bin/sh', ['-n', '-c', script]).status, 0, 'valid POSIX sh');
  });

  test('systemd: the same preparation, then /sbin/init as PID 1', () => {
    const runit = startCommand({ init: 'runit' })[2] ?? '';
    const systemd = startCommand({ init: 'systemd' })[2] ?? '';
    assert.match(systemd, /; exec \/sbin\/init$/);
    assert.ok(systemd.startsWith(prepareContainerScript()) && runit.startsWith(prepareContainerScript()));
    assert.ok(systemd.includes(cgroupDelegationScript('systemd')));
    assert.ok(runit.includes(cgroupDelegationScript('runit')));
  });

  test("the operator's start_command is used as is", () => {
    assert.deepEqual(startCommand({ startCommand: ['/sbin/init'], init: 'systemd' }), ['/sbin/init']);
  });
});
