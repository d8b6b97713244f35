import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, test } from 'node:test';
import {
  cgroupDelegationScript,
  chooseInit,
  initContainerConfig,
  STEMCELL_INIT_LABEL,
  securityOptions,
} from '../../src/backends/docker/container-init.ts';

describe('docker VM containers: cgroups and init', () => {
  test('systemd when the config says so, or when the stemcell image is labelled systemd; else runit', () => {
    const off = { start_containers_with_systemd: false };
    const on = { start_containers_with_systemd: true };
    assert.equal(chooseInit(off, null).init, 'runit');
    assert.equal(chooseInit(off, { other: 'x' }).init, 'runit');
    assert.equal(chooseInit(off, { [STEMCELL_INIT_LABEL]: 'systemd' }).init, 'systemd');
    assert.match(chooseInit(off, { [STEMCELL_INIT_LABEL]: 'systemd' }).reason, /stemcell/);
    assert.equal(chooseInit(off, { [STEMCELL_INIT_LABEL]: 'runit' }).init, 'runit');
    assert.equal(chooseInit(on, { [STEMCELL_INIT_LABEL]: 'runit' }).init, 'systemd');
    assert.match(chooseInit(on, null).reason, /start_containers_with_systemd/);
  });

  test('every VM gets a private cgroup namespace; runit needs nothing more', () => {
    assert.deepEqual(initContainerConfig('runit'), { config: {}, hostConfig: { CgroupnsMode: 'private' } });
  });

  test('systemd gets tmpfs /run and /run/lock, container=docker, no gettys and SIGRTMIN+3 as stop signal', () => {
    const { config, hostConfig } = initContainerConfig('systemd');
    assert.equal(hostConfig.CgroupnsMode, 'private');
    assert.deepEqual(Object.keys(hostConfig.Tmpfs ?? {}).sort(), ['/run', '/run/lock']);
    assert.match(hostConfig.Tmpfs?.['/run'] ?? '', /(^|,)exec(,|$)/, 'the engine defaults tmpfs to noexec');
    assert.equal(config.StopSignal, 'SIGRTMIN+3');
    assert.ok(config.Env?.includes('container=docker'));
    assert.ok(config.Env?.includes('SYSTEMD_GETTY_AUTO=0'));
  });

  test('the cgroup step is valid POSIX sh and makes the hierarchy writable on v1 and v2', () => {
    for (const init of ['runit', 'systemd'] as const) {
      const script = cgroupDelegationScript(init);
      assert.equal(spawnSync('/bin/sh', ['-n', '-c', script]).status, 0, `${init}: valid sh`);
      assert.equal(spawnSync('/bin/busybox', ['sh', '-n', '-c', script]).status, 0, `${init}: busybox sh`);
      assert.match(script, /mount -o remount,bind,rw \/sys\/fs\/cgroup;/, 'v2: the one hierarchy');
      assert.match(script, /for d in \/sys\/fs\/cgroup\/\*\/; do mount -o remount,bind,rw "\$d"/, 'v1');
    }
  });

  test('cgroup v1: a net_cls hierarchy bound by the host operation is mounted when the engine showed none', () => {
    for (const init of ['runit', 'systemd'] as const) {
      const script = cgroupDelegationScript(init);
      const v1 = script.slice(script.indexOf('else '));
      assert.match(
        v1,
        /\[ "\$h" != 0 \] && \[ ! -e \/sys\/fs\/cgroup\/net_cls \]/,
        'only when bound and not visible',
      );
      assert.match(v1, /mount -t cgroup -o "\$o" cgroup "\/sys\/fs\/cgroup\/\$o"/);
      assert.match(v1, /mount -o remount,bind,ro \/sys\/fs\/cgroup;/, 'the tmpfs is read-only again');
      assert.doesNotMatch(script.slice(0, script.indexOf('else ')), /net_cls/, 'not on cgroup v2');
    }
  });

  test('v2 with runit: init moves to a leaf and the controllers are delegated; systemd does that itself', () => {
    const runit = cgroupDelegationScript('runit');
    assert.match(runit, /\/sys\/fs\/cgroup\/init\/cgroup\.procs/);
    assert.match(runit, /"\+\$c" > \/sys\/fs\/cgroup\/cgroup\.subtree_control/);
    const systemd = cgroupDelegationScript('systemd');
    assert.doesNotMatch(systemd, /cgroup\.procs|subtree_control/);
  });

  test('apparmor=unconfined unless the operator chose a profile or the VM is privileged', () => {
    assert.deepEqual(securityOptions([], false), ['apparmor=unconfined']);
    assert.deepEqual(securityOptions(['no-new-privileges'], false), [
      'no-new-privileges',
      'apparmor=unconfined',
    ]);
    assert.deepEqual(securityOptions(['apparmor=my-profile'], false), ['apparmor=my-profile']);
    assert.deepEqual(securityOptions(['apparmor:my-profile'], false), ['apparmor:my-profile']);
    assert.deepEqual(securityOptions([], true), []);
  });
});
