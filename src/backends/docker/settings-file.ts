import type { AgentSettings } from '../../agent/settings.ts';
import { withPersistentDisks } from '../../agent/settings.ts';
import type { DiskCid, DiskHint, VmCid } from '../../cpi/types.ts';
import type { Containers } from './engine/containers.ts';
import type { TarEntry } from './engine/tar.ts';

/** Where warden/docker stemcells' agent.json tells the agent to read its settings (a File source). */
export const SETTINGS_DIR = '/var/vcap/bosh';
export const SETTINGS_FILE = 'warden-cpi-agent-env.json';
export const MOUNT_POINT_IN_VM = '/warden-cpi-dev';

/**
 * A new VM's settings reach its root filesystem without an archive request (~50 ms of create_vm on
 * Docker 20.10, the engine mounting the stopped container's root): create_vm stages the files in
 * data_dir/settings/<vm> on the host (host operation `stage-settings`, while the engine creates the
 * container), the container binds that directory read-only here, and its start command copies the
 * files into SETTINGS_DIR once, before the agent starts, then leaves STAGED_MARKER (create_vm waits
 * for it, then removes the staged files). From then on the copy in the root filesystem is the VM's
 * settings file, as for every other VM: attach/detach rewrite it, reboot_vm reads it, and a restart
 * (reboot_vm, engine or host restart) keeps it: with the marker there, nothing is copied again.
 */
export const STAGED_SETTINGS_IN_VM = '/warden-cpi-settings';
export const STAGED_MARKER = '.warden-cpi-settings-installed';
/** The files of SETTINGS_DIR that create_vm writes, in this order. */
export const SETTINGS_FILES = [
  SETTINGS_FILE,
  'warden-cpi-user-data.json',
  'warden-cpi-metadata.json',
] as const;
/** Base64 characters per `stage-settings` request: a helper request line stays under MAX_REQUEST_BYTES. */
const STAGE_PART_CHARS = 3000;

/** The request arguments that stage `settings`: one part each, sent together. */
export function stagedSettingsParts(settings: AgentSettings): string[] {
  const data = Buffer.from(JSON.stringify(settings)).toString('base64');
  const parts: string[] = [];
  for (let at = 0; at < data.length; at += STAGE_PART_CHARS)
    parts.push(data.slice(at, at + STAGE_PART_CHARS));
  return parts;
}

/** The two small files next to the settings; the host script writes the same (host-script.ts). */
export const userDataJson = (): string =>
  JSON.stringify({ Registry: { Endpoint: `${SETTINGS_DIR}/${SETTINGS_FILE}` } });
export const metadataJson = (vmCid: string): string => JSON.stringify({ 'instance-id': vmCid });

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
    file(SETTINGS_FILES[0], JSON.stringify(settings)),
    // Read only by legacy agents; cheap to keep.
    file(SETTINGS_FILES[1], userDataJson()),
    file(SETTINGS_FILES[2], metadataJson(vmCid)),
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
