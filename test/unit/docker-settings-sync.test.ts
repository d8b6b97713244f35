import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type AgentSettings, buildAgentSettings } from '../../src/agent/settings.ts';
import type { TarEntry } from '../../src/backends/docker/engine/tar.ts';
import {
  diskHint,
  readSettings,
  SETTINGS_DIR,
  SETTINGS_FILE,
  type SettingsStore,
  syncPersistentDisks,
  writeSettings,
} from '../../src/backends/docker/settings-file.ts';
import { diskCid, vmCid } from '../support/ids.ts';

/** A container's file system in memory, as the archive endpoints see it; counts the writes. */
function fakeContainer(opts: { withSettingsDir?: boolean } = {}) {
  const files = new Map<string, Buffer>();
  const dirs = new Set(opts.withSettingsDir === false ? ['/'] : ['/', SETTINGS_DIR]);
  let writes = 0;
  const store: SettingsStore = {
    readFile: async (_id, path) => files.get(path),
    putFiles: async (_id, dir, entries: TarEntry[]) => {
      if (!dirs.has(dir))
        throw new Error(`Copying files into the container: HTTP 404 no such directory ${dir}`);
      writes++;
      for (const e of entries) {
        const path = `${dir === '/' ? '' : dir}/${e.name}`.replace(/\/$/, '');
        if (e.type === 'directory') dirs.add(path);
        else files.set(path, e.content ?? Buffer.alloc(0));
      }
    },
  };
  return { store, files, writes: () => writes };
}

const VM = vmCid('vm-0b7e5a1c-7b7a-4d8e-9a1b-1234567890ab');
const D1 = diskCid('disk-11111111-7b7a-4d8e-9a1b-1234567890ab');
const D2 = diskCid('disk-22222222-7b7a-4d8e-9a1b-1234567890ab');

const settings = (): AgentSettings =>
  buildAgentSettings({
    agentId: 'agent-1',
    vmCid: VM,
    networks: {},
    env: { bosh: { password: 'x' } },
    agent: { mbus: 'nats://127.0.0.1:4222', ntp: [] },
    preconfiguredNetworks: true,
  });

const persistentOf = async (store: SettingsStore) => (await readSettings(store, 'c1'))?.disks.persistent;

describe('settings sync for persistent disks', () => {
  test('the file names exactly the disks given, each with its hint; the rest of the settings stays', async () => {
    const c = fakeContainer();
    await writeSettings(c.store, 'c1', VM, settings());
    assert.equal(await syncPersistentDisks(c.store, 'c1', VM, [D2, D1]), true);
    assert.deepEqual(await persistentOf(c.store), { [D1]: diskHint(D1), [D2]: diskHint(D2) });
    assert.deepEqual((await readSettings(c.store, 'c1'))?.env, { bosh: { password: 'x' } });
    assert.equal(await syncPersistentDisks(c.store, 'c1', VM, [D2]), true);
    assert.deepEqual(await persistentOf(c.store), { [D2]: diskHint(D2) });
  });

  test('nothing is written when the file already names exactly those disks', async () => {
    const c = fakeContainer();
    await writeSettings(c.store, 'c1', VM, settings());
    await syncPersistentDisks(c.store, 'c1', VM, [D1]);
    const before = c.writes();
    assert.equal(await syncPersistentDisks(c.store, 'c1', VM, [D1]), false);
    assert.equal(c.writes(), before);
  });

  test('settings read ahead by the caller are used instead of reading again', async () => {
    const c = fakeContainer();
    await writeSettings(c.store, 'c1', VM, settings());
    const prefetched = { ...settings(), agent_id: 'prefetched' };
    await syncPersistentDisks(c.store, 'c1', VM, [D1], Promise.resolve(prefetched));
    assert.equal((await readSettings(c.store, 'c1'))?.agent_id, 'prefetched');
  });

  test('a VM without a settings file is an error naming the VM, and nothing is written', async () => {
    const c = fakeContainer();
    await assert.rejects(
      syncPersistentDisks(c.store, 'c1', VM, [D1]),
      new RegExp(`settings file of VM '${VM}'`),
    );
    assert.equal(c.writes(), 0);
  });

  test('an image without /var/vcap/bosh gets the directories and the files', async () => {
    const c = fakeContainer({ withSettingsDir: false });
    await writeSettings(c.store, 'c1', VM, settings());
    assert.ok(c.files.has(`${SETTINGS_DIR}/${SETTINGS_FILE}`));
    assert.deepEqual(JSON.parse(c.files.get(`${SETTINGS_DIR}/warden-cpi-metadata.json`)?.toString() ?? ''), {
      'instance-id': VM,
    });
  });
});
