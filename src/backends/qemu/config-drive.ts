import { chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { AgentSettings } from '../../agent/settings.ts';
import type { VmCid } from '../../cpi/types.ts';
import { syncDirectory } from '../../util/atomic-file.ts';
import { CommandError, runChecked } from '../../util/command.ts';

/**
 * The agent's settings source: an OpenStack-style config drive, an ISO 9660 image labelled
 * `config-2`. The same settings are written under the names the two kinds of readers use:
 *   openstack/latest/{meta_data.json, user_data, user_data.json}  (OpenStack's layout)
 *   ec2/latest/{meta-data.json, user-data}  (what BOSH OpenStack stemcells' agent.json reads)
 * Rock Ridge (-R, not -r) keeps the real modes, so the files holding settings stay 0600 root.
 */
export const CONFIG_DRIVE_LABEL = 'config-2';

export interface ConfigDriveInput {
  vmCid: VmCid;
  hostname: string;
  settings: AgentSettings;
}

function files(input: ConfigDriveInput): Record<string, string> {
  const userData = JSON.stringify(input.settings);
  const openstackMeta = JSON.stringify({
    uuid: input.vmCid,
    name: input.hostname,
    hostname: input.hostname,
    'instance-id': input.vmCid,
    'public-keys': {},
  });
  const ec2Meta = JSON.stringify({ 'instance-id': input.vmCid, hostname: input.hostname, 'public-keys': {} });
  return {
    'openstack/latest/meta_data.json': openstackMeta,
    'openstack/latest/user_data': userData,
    'openstack/latest/user_data.json': userData,
    'ec2/latest/meta-data.json': ec2Meta,
    'ec2/latest/user-data': userData,
  };
}

/** Builds the ISO at `isoPath` (replacing it atomically); `stagingDir` is used and removed. */
export async function writeConfigDrive(
  input: ConfigDriveInput,
  stagingDir: string,
  isoPath: string,
): Promise<void> {
  await rm(stagingDir, { recursive: true, force: true });
  await mkdir(stagingDir, { mode: 0o700 });
  try {
    for (const [name, content] of Object.entries(files(input))) {
      await mkdir(join(stagingDir, dirname(name)), { recursive: true, mode: 0o700 });
      await writeFile(join(stagingDir, name), content, { mode: 0o600 });
    }
    const temporary = `${isoPath}.new`;
    await rm(temporary, { force: true });
    await makeIso(stagingDir, temporary);
    await rename(temporary, isoPath);
    await syncDirectory(dirname(isoPath));
  } finally {
    await rm(stagingDir, { recursive: true, force: true });
  }
}

async function makeIso(sourceDir: string, isoPath: string): Promise<void> {
  const args = [
    '-quiet',
    '-V',
    CONFIG_DRIVE_LABEL,
    '-R',
    '-J',
    '-input-charset',
    'utf-8',
    '-o',
    isoPath,
    sourceDir,
  ];
  try {
    await runChecked('genisoimage', args, { timeoutMs: 60_000 });
  } catch (e) {
    if (!(e instanceof CommandError && e.result === undefined)) throw e;
    // genisoimage is not installed: xorriso's mkisofs emulation takes the same options.
    await runChecked('xorriso', ['-as', 'mkisofs', ...args], { timeoutMs: 60_000 });
  }
  // The image is created with the umask's mode; the settings inside are secrets.
  await chmod(isoPath, 0o600);
}
