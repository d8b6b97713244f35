import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { AgentSettings } from '../../src/agent/settings.ts';
import type { DockerContext } from '../../src/backends/docker/context.ts';
import { mergeDiskMetadata, syncSettings } from '../../src/backends/docker/disks.ts';
import { encodeHostArgs, hostOutcome } from '../../src/backends/docker/host-operations.ts';
import { startCommand, waitForDisksScript } from '../../src/backends/docker/start-command.ts';
import { CpiFailure } from '../../src/rpc/errors.ts';
import { runHostScript } from '../support/host-script.ts';
import { diskCid, vmCid } from '../support/ids.ts';

const work = mkdtempSync(join(tmpdir(), 'cpi-data-safety-'));
after(() => rmSync(work, { recursive: true, force: true }));

function runScript(
  script: string,
  whileRunning?: () => void,
): Promise<{ code: number; ms: number; stderr: string }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn('/bin/sh', ['-c', script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += d;
    });
    if (whileRunning) setTimeout(whileRunning, 1200);
    child.on('exit', (code) => resolve({ code: code ?? -1, ms: Date.now() - started, stderr }));
  });
}

describe('docker start command: the agent starts only with its disks', () => {
  const disk = 'disk-0b7e2a5c-1111-4222-8333-444455556666';
  const setup = (name: string, mounted: string[]) => {
    const dir = join(work, name);
    mkdirSync(join(dir, 'data'), { recursive: true });
    const settings = join(dir, 'settings.json');
    writeFileSync(
      settings,
      JSON.stringify({ disks: { persistent: { [disk]: `/warden-cpi-dev/${disk}` } }, env: {} }),
    );
    const mountinfo = join(dir, 'mountinfo');
    const line = (mp: string) => `99 30 7:3 / ${mp} rw,noatime shared:9 - ext4 /dev/loop3 rw\n`;
    writeFileSync(mountinfo, `30 1 254:0 / / rw - ext4 /dev/vda rw\n${mounted.map(line).join('')}`);
    const script = `${waitForDisksScript({ seconds: 3, settingsPath: settings, mountinfo, ephemeralDir: join(dir, 'data') })}; echo started`;
    return { script, mountinfo, line, settings };
  };

  test('goes on at once when every disk the settings name is mounted', async () => {
    const { script } = setup('mounted', [`/warden-cpi-dev/${disk}`]);
    const r = await runScript(script);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.ms < 1000, `took ${r.ms} ms`);
  });

  test('waits for a disk that is mounted later', async () => {
    const { script, mountinfo, line } = setup('later', []);
    const r = await runScript(script, () =>
      writeFileSync(mountinfo, line(`/warden-cpi-dev/${disk}`), { flag: 'a' }),
    );
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.ms >= 1000, `did not wait (${r.ms} ms)`);
  });

  test('fails (exit 1, never starting the agent) when a disk stays missing; an unmounted directory with the same prefix does not count', async () => {
    const { script } = setup('missing', [`/warden-cpi-dev/${disk}-other`, '/warden-cpi-dev']);
    const r = await runScript(script);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`persistent disk /warden-cpi-dev/${disk} is not mounted after 3 s`));
  });

  test('no settings file or no disks: nothing to wait for', async () => {
    const { script, settings } = setup('none', []);
    rmSync(settings);
    assert.equal((await runScript(script)).code, 0);
  });

  test('both init modes run the wait before the init', () => {
    for (const init of ['runit', 'systemd'] as const) {
      const script = startCommand({ init })[2] ?? '';
      const wait = script.indexOf('until mounted "$d"');
      assert.ok(wait > 0 && wait < script.indexOf('exec '), init);
    }
  });
});

describe('docker disks: metadata and settings sync', () => {
  test('set_disk_metadata keeps the record written at creation and earlier keys', () => {
    const created = JSON.stringify({ cpi: { size_mib: 64, created_at: 't0' }, bosh: {} });
    const first = mergeDiskMetadata(created, { deployment: 'd' }, 't1');
    const second = mergeDiskMetadata(JSON.stringify(first), { instance_index: '0' }, 't2');
    assert.deepEqual(second, {
      cpi: { size_mib: 64, created_at: 't0' },
      bosh: { deployment: 'd', instance_index: '0' },
      updated_at: 't2',
    });
    assert.deepEqual(mergeDiskMetadata('not json', { a: 'b' }, 't'), {
      unparsed: 'not json',
      bosh: { a: 'b' },
      updated_at: 't',
    });
  });

  test('the settings sync fails retryably when the mounted disks keep changing', async () => {
    let listing = 0;
    let settings: AgentSettings = {
      agent_id: 'a',
      vm: { name: 'vm-x', id: 'vm-x' },
      mbus: 'nats://x',
      ntp: [],
      networks: {},
      disks: { system: '', ephemeral: null, persistent: {}, raw_ephemeral: null },
      env: {},
    } as unknown as AgentSettings;
    const ctx = {
      host: {
        run: async () => ({
          exitCode: 0,
          stderr: '',
          lines: [['disk', `disk-0b7e5a1c-7b7a-4d8e-9a1b-${String(++listing).padStart(12, '0')}`]],
        }),
      },
      containers: {
        readFile: async () => Buffer.from(JSON.stringify(settings)),
        putFiles: async (_id: string, _dir: string, entries: Array<{ name: string; content: Buffer }>) => {
          const file = entries.find((e) => e.name === 'warden-cpi-agent-env.json');
          if (file) settings = JSON.parse(file.content.toString());
        },
      },
      logger: { warn: () => {}, info: () => {}, debug: () => {} },
    } as unknown as DockerContext;
    await assert.rejects(
      syncSettings(ctx, 'c1', vmCid('vm-0b7e5a1c-7b7a-4d8e-9a1b-1234567890ab'), [
        diskCid('disk-0b7e5a1c-7b7a-4d8e-9a1b-1234567890ab'),
      ]),
      (e: unknown) => {
        assert.ok(e instanceof CpiFailure);
        assert.equal(e.type, 'Bosh::Clouds::CloudError');
        assert.equal(e.okToRetry, true);
        assert.match(e.message, /vm-0b7e5a1c/);
        return true;
      },
    );
  });
});

describe('host script: set-disk-metadata replaces only what the caller read', () => {
  test('a record changed since it was read answers changed and stays as it is', () => {
    const dataDir = mkdtempSync(join(work, 'data-'));
    const disk = diskCid('disk-0b7e5a1c-7b7a-4d8e-9a1b-1234567890ab');
    const run = (op: string, args: string[]) => runHostScript(dataDir, op, args);
    mkdirSync(join(dataDir, 'disks', disk), { recursive: true });
    mkdirSync(join(dataDir, 'locks'));
    writeFileSync(join(dataDir, 'disks', disk, 'metadata.json'), '{"cpi":{"size_mib":1},"bosh":{}}');
    const read = run('read-disk-metadata', [disk]);
    const record = '{"cpi":{"size_mib":1},"bosh":{}}';
    assert.equal(read.stdout, `metadata ${Buffer.from(record).toString('base64')}\n`);
    const stale = run(
      'set-disk-metadata',
      encodeHostArgs('set-disk-metadata', [disk, '{"other":1}', { x: 1 }]),
    );
    assert.equal(hostOutcome('set-disk-metadata', stale.code ?? -1), 'changed');
    assert.equal(
      readFileSync(join(dataDir, 'disks', disk, 'metadata.json'), 'utf8'),
      '{"cpi":{"size_mib":1},"bosh":{}}',
    );
    const current = '{"cpi":{"size_mib":1},"bosh":{}}';
    const ok = run('set-disk-metadata', encodeHostArgs('set-disk-metadata', [disk, current, { y: 2 }]));
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(readFileSync(join(dataDir, 'disks', disk, 'metadata.json'), 'utf8'), '{"y":2}');
    assert.deepEqual(readdirSync(join(dataDir, 'disks', disk)), ['metadata.json'], 'no temporary file left');

    // A record of several lines (edited by hand) is read whole and replaced when it is what was read.
    const edited = '{\n  "cpi": {"size_mib": 1}\n}\n';
    writeFileSync(join(dataDir, 'disks', disk, 'metadata.json'), edited);
    const whole = run('read-disk-metadata', [disk]);
    assert.equal(whole.stdout, `metadata ${Buffer.from(edited).toString('base64')}\n`);
    const firstLine = run('set-disk-metadata', encodeHostArgs('set-disk-metadata', [disk, '{', { z: 0 }]));
    assert.equal(hostOutcome('set-disk-metadata', firstLine.code ?? -1), 'changed');
    const replaced = run(
      'set-disk-metadata',
      encodeHostArgs('set-disk-metadata', [disk, edited.replace(/\n+$/, ''), { z: 3 }]),
    );
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.equal(readFileSync(join(dataDir, 'disks', disk, 'metadata.json'), 'utf8'), '{"z":3}');
  });
});
