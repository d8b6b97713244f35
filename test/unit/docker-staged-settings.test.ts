import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { AgentSettings } from '../../src/agent/settings.ts';
import { encodeHostArgs } from '../../src/backends/docker/host-operations.ts';
import { hostScript } from '../../src/backends/docker/host-script.ts';
import {
  metadataJson,
  SETTINGS_FILE,
  SETTINGS_FILES,
  STAGED_MARKER,
  stagedSettingsParts,
  userDataJson,
} from '../../src/backends/docker/settings-file.ts';
import { installStagedSettingsScript, startCommand } from '../../src/backends/docker/start-command.ts';
import { runHostScript } from '../support/host-script.ts';
import { vmCid } from '../support/ids.ts';

/** The host script run directly in a scratch data_dir (no helper, no nsenter), through test/support/host-script.ts. */
const work = mkdtempSync(join(tmpdir(), 'staged-settings-'));
after(() => rmSync(work, { recursive: true, force: true }));
const dataDir = join(work, 'data');
mkdirSync(dataDir);

const host = (op: string, args: string[]) => runHostScript(dataDir, op, args);

const VM = vmCid('vm-0b7e5a1c-7b7a-4d8e-9a1b-1234567890ab');
/** Large enough for three parts, with the characters a real settings file has. */
const SETTINGS = {
  agent_id: 'agent-1',
  env: { bosh: { mbus: { cert: { private_key: `-----BEGIN KEY-----\n${'k'.repeat(5000)}\n"quoted" é` } } } },
} as unknown as AgentSettings;

describe('docker staged settings: create_vm stages, the start command installs once', () => {
  const staged = join(dataDir, 'settings', VM);
  const settingsDir = join(work, 'root/var/vcap/bosh');
  const install = () =>
    spawnSync('/bin/sh', ['-c', installStagedSettingsScript({ settingsDir, stagedDir: staged })], {
      encoding: 'utf8',
    });

  test('the parts sent in any order are installed by the one that completes the set, files 0600', () => {
    const parts = stagedSettingsParts(SETTINGS);
    assert.equal(parts.length, 3);
    const order = [2, 3, 1];
    const outputs = order.map((i) =>
      host('stage-settings', encodeHostArgs('stage-settings', [VM, i, parts.length, parts[i - 1] ?? ''])),
    );
    for (const r of outputs) assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      outputs.map((r) => r.stdout.trim()),
      ['', '', 'installed'],
    );
    assert.deepEqual(JSON.parse(readFileSync(join(staged, SETTINGS_FILE), 'utf8')), SETTINGS);
    assert.equal(readFileSync(join(staged, SETTINGS_FILES[1]), 'utf8'), userDataJson());
    assert.equal(readFileSync(join(staged, SETTINGS_FILES[2]), 'utf8'), metadataJson(VM));
    for (const f of SETTINGS_FILES) assert.equal(statSync(join(staged, f)).mode & 0o777, 0o600, f);
    assert.deepEqual(
      readdirSync(staged).filter((f) => f.startsWith('.part')),
      [],
      'parts removed once installed',
    );
    // A part repeated afterwards (a retried request) installs nothing again.
    assert.equal(host('stage-settings', [VM, '1', '3', parts[0] ?? '']).stdout.trim(), '');
  });

  test('the start command copies them in on the first start only; later starts keep what attach/detach wrote', () => {
    const first = install();
    assert.equal(first.status, 0, first.stderr);
    for (const f of SETTINGS_FILES)
      assert.equal(readFileSync(join(settingsDir, f), 'utf8'), readFileSync(join(staged, f), 'utf8'), f);
    assert.equal(statSync(join(settingsDir, SETTINGS_FILE)).mode & 0o777, 0o600);
    assert.ok(existsSync(join(settingsDir, STAGED_MARKER)));
    writeFileSync(
      join(settingsDir, SETTINGS_FILE),
      '{"disks":{"persistent":{"disk-x":"/warden-cpi-dev/disk-x"}}}',
    );
    assert.equal(install().status, 0);
    assert.match(readFileSync(join(settingsDir, SETTINGS_FILE), 'utf8'), /disk-x/);
  });

  test('without staged files a first start fails, naming them, and installs nothing', () => {
    const r = spawnSync(
      '/bin/sh',
      [
        '-c',
        installStagedSettingsScript({
          settingsDir: join(work, 'other/var/vcap/bosh'),
          stagedDir: join(work, 'none'),
        }),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 1);
    assert.match(r.stderr, /cannot install the agent settings staged at/);
    assert.ok(!existsSync(join(work, 'other/var/vcap/bosh', STAGED_MARKER)));
  });

  test('both init modes install the settings before anything reads them (the disk wait) or the init starts', () => {
    for (const init of ['runit', 'systemd'] as const) {
      const script = startCommand({ init })[2] ?? '';
      const installs = script.indexOf(STAGED_MARKER);
      assert.ok(installs >= 0 && installs < script.indexOf('until mounted "$d"'), init);
    }
  });

  test('delete-vm-storage removes the staged files', () => {
    assert.ok(existsSync(staged));
    const r = host('delete-vm-storage', encodeHostArgs('delete-vm-storage', [VM, undefined]));
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!existsSync(staged));
  });

  test("delete-vm-storage given the VM's init waits until its mount namespace is gone before releasing anything", async () => {
    mkdirSync(staged, { recursive: true });
    const vm = spawn('sleep', ['0.6'], { stdio: 'ignore' });
    const started = Date.now();
    const op = spawn('sh', ['-c', hostScript(), 'sh', 'delete-vm-storage', dataDir, VM, String(vm.pid)], {
      stdio: 'ignore',
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(existsSync(staged), 'nothing released while the VM runs');
    const code = await new Promise((r) => op.on('exit', r));
    assert.equal(code, 0);
    assert.ok(Date.now() - started >= 500);
    assert.ok(!existsSync(staged));
  });
});
