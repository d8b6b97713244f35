import type { AgentSettings } from '../../agent/settings.ts';
import { withPersistentDisks } from '../../agent/settings.ts';
import type { DiskCid, DiskHint, VmCid } from '../../cpi/types.ts';
import type { Containers } from './engine/containers.ts';
import type { TarEntry } from './engine/tar.ts';

/** Where warden/docker stemcells' agent.json tells the agent to read its settings (a File source). */
export const SETTINGS_DIR = '/var/vcap/bosh';
export const SETTINGS_FILE = 'warden-cpi-agent-env.json';
export const MOUNT_POINT_IN_VM = '/warden-cpi-dev';

/** Where the settings file lives: a container's files. */
export type SettingsStore = Pick<Containers, 'readFile' | 'putFiles'>;

export const diskHint = (diskCid: DiskCid): string => `${MOUNT_POINT_IN_VM}/${diskCid}`;

function files(settings: AgentSettings, vmCid: VmCid): TarEntry[] {
  const file = (name: string, content: string): TarEntry => ({
    name,
    type: 'file',
    mode: 0o600,
    content: Buffer.from(content),
  });
  return [
    file(SETTINGS_FILE, JSON.stringify(settings)),
    // Read only by legacy agents; cheap to keep.
    file(
      'warden-cpi-user-data.json',
      JSON.stringify({ Registry: { Endpoint: `${SETTINGS_DIR}/${SETTINGS_FILE}` } }),
    ),
    file('warden-cpi-metadata.json', JSON.stringify({ 'instance-id': vmCid })),
  ];
}

/** Writes the settings (mode 0600) into the container, whether it runs or not. */
export async function writeSettings(
  containers: SettingsStore,
  containerId: string,
  vmCid: VmCid,
  settings: AgentSettings,
): Promise<void> {
  try {
    await containers.putFiles(containerId, SETTINGS_DIR, files(settings, vmCid));
  } catch (e) {
    // An image without /var/vcap/bosh: create the directories too.
    if (!(e instanceof Error && /HTTP 404/.test(e.message))) throw e;
    const dirs: TarEntry[] = ['var/', 'var/vcap/', 'var/vcap/bosh/'].map((name) => ({
      name,
      type: 'directory',
      mode: 0o755,
    }));
    const nested = files(settings, vmCid).map((f) => ({ ...f, name: `var/vcap/bosh/${f.name}` }));
    await containers.putFiles(containerId, '/', [...dirs, ...nested]);
  }
}

export async function readSettings(
  containers: SettingsStore,
  containerId: string,
): Promise<AgentSettings | undefined> {
  const content = await containers.readFile(containerId, `${SETTINGS_DIR}/${SETTINGS_FILE}`);
  if (!content) return undefined;
  return JSON.parse(content.toString('utf8')) as AgentSettings;
}

/**
 * Rewrites `disks.persistent` to name exactly the given disks (the ones really mounted), unless
 * the file names exactly those already; says whether it wrote. `current` is the settings file if
 * the caller already started reading it.
 */
export async function syncPersistentDisks(
  containers: SettingsStore,
  containerId: string,
  vmCid: VmCid,
  diskCids: DiskCid[],
  current: Promise<AgentSettings | undefined> = readSettings(containers, containerId),
): Promise<boolean> {
  const settings = await current;
  if (!settings) throw new Error(`the agent settings file of VM '${vmCid}' is missing`);
  const disks: Record<string, DiskHint> = {};
  for (const cid of [...diskCids].sort()) disks[cid] = diskHint(cid);
  const updated = withPersistentDisks(settings, disks);
  if (samePersistentDisks(settings, updated)) return false;
  await writeSettings(containers, containerId, vmCid, updated);
  return true;
}

function samePersistentDisks(a: AgentSettings, b: AgentSettings): boolean {
  const before = a.disks?.persistent ?? {};
  const after = b.disks.persistent;
  const keys = Object.keys(after);
  return (
    Object.keys(before).length === keys.length &&
    keys.every((k) => Object.hasOwn(before, k) && JSON.stringify(before[k]) === JSON.stringify(after[k]))
  );
}
