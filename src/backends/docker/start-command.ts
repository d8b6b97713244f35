/**
 * The container's command: a shell step that prepares the container the way the BOSH agent needs it,
 * then the stemcell's init (runit's runsvdir-start, or systemd as PID 1).
 */
import { cgroupDelegationScript, type InitSystem } from './container-init.ts';

import {
  MOUNT_POINT_IN_VM,
  SETTINGS_DIR,
  SETTINGS_FILE,
  SETTINGS_FILES,
  STAGED_MARKER,
  STAGED_SETTINGS_IN_VM,
} from './settings-file.ts';

const SETTINGS_PATH = `${SETTINGS_DIR}/${SETTINGS_FILE}`;

/** Files Docker bind-mounts into every container; the agent replaces them (rename, symlink), which a mount point refuses. */
export const ENGINE_MOUNTED_FILES = ['/etc/resolv.conf', '/etc/hosts', '/etc/hostname'] as const;

/**
 * Shell (POSIX sh, so busybox images run it too) that replaces each engine bind mount by a regular file
 * with the same content, and creates the /var/vcap directories the agent expects.
 * The content is kept because the agent, without DNS servers in the network spec, copies a regular
 * /etc/resolv.conf into resolvconf's base, so the container keeps the engine's DNS.
 */
export function prepareContainerScript(): string {
  const unmount = ENGINE_MOUNTED_FILES.map(
    (f) =>
      `if c=$(cat ${f} 2>/dev/null) && umount ${f} 2>/dev/null; then rm -f ${f}; printf '%s\\n' "$c" > ${f}; fi`,
  );
  return [
    installStagedSettingsScript(),
    ...unmount,
    waitForDisksScript(),
    'mkdir -p /var/vcap/store /var/vcap/data/sys /var/vcap/sys',
    // Left over from a previous run of the same container (restart, attach by recreation): stale pid files.
    'rm -rf /var/vcap/data/sys/run',
  ].join('; ');
}

/**
 * Shell that copies the settings create_vm staged (settings-file.ts) into SETTINGS_DIR on the
 * container's first start, each file through a temporary name and a rename, then leaves the marker;
 * with the marker there (every later start) it does nothing, so the settings that attach/detach
 * wrote since are kept. Exits 1 (the engine starts the container again) if it cannot.
 */
export function installStagedSettingsScript({
  settingsDir = SETTINGS_DIR,
  stagedDir = STAGED_SETTINGS_IN_VM,
} = {}): string {
  const copy = SETTINGS_FILES.map(
    (f) =>
      `cp -p ${stagedDir}/${f} ${settingsDir}/.${f}.new && mv -f ${settingsDir}/.${f}.new ${settingsDir}/${f}`,
  ).join(' && ');
  return (
    `if [ ! -e ${settingsDir}/${STAGED_MARKER} ]; then ` +
    `{ mkdir -p ${settingsDir} && ${copy} && : > ${settingsDir}/${STAGED_MARKER}; } || ` +
    `{ echo "bosh-cpi: cannot install the agent settings staged at ${stagedDir}" >&2; exit 1; }; fi`
  );
}

/** How long a starting container waits for its disks before it exits (the engine then starts it again). */
export const DISK_WAIT_SECONDS = 30;

/**
 * Shell that waits until every persistent disk the settings name is mounted at its
 * /warden-cpi-dev/<disk> and the ephemeral disk accepts writes (its mount point is immutable while
 * its disk is missing), and exits 1 after DISK_WAIT_SECONDS otherwise. After a host reboot the
 * engine may start the container before the CPI's helper has mounted the disks again; the agent
 * must not start then, or the job would run without its store. Builtins plus grep only.
 */
export function waitForDisksScript({
  seconds = DISK_WAIT_SECONDS,
  settingsPath = SETTINGS_PATH,
  mountinfo = '/proc/self/mountinfo',
  ephemeralDir = '/var/vcap/data',
} = {}): string {
  const giveUp = (what: string) =>
    `waited=$((waited + 1)); if [ "$waited" -gt ${seconds} ]; then echo "bosh-cpi: ${what} after ${seconds} s; not starting the agent" >&2; exit 1; fi; sleep 1`;
  return [
    // PID 1 ignores SIGTERM without a handler: a stop while waiting would take the engine's full timeout.
    "trap 'exit 143' TERM",
    `mounted() { while read -r _ _ _ _ m _; do [ "$m" = "$1" ] && return 0; done < ${mountinfo}; return 1; }`,
    `waited=0; for d in $(grep -o '"${MOUNT_POINT_IN_VM}/[^"]*"' ${settingsPath} 2>/dev/null | grep -o '/[^"]*'); do`,
    `  until mounted "$d"; do ${giveUp('persistent disk $d is not mounted')}; done`,
    'done',
    `until mkdir -p ${ephemeralDir}/sys 2>/dev/null; do ${giveUp(`the ephemeral disk at ${ephemeralDir} is not mounted`)}; done`,
    'trap - TERM',
  ].join('\n');
}

export interface StartCommandOptions {
  /** The operator's own command (`docker.start_command`): used as is. */
  startCommand?: string[];
  /** Chosen by chooseInit (config or stemcell). */
  init: InitSystem;
}

/** The Entrypoint of a VM's container. */
export function startCommand(options: StartCommandOptions): string[] {
  if (options.startCommand) return options.startCommand;
  const init =
    options.init === 'systemd'
      ? 'exec /sbin/init'
      : 'exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /usr/sbin/runsvdir-start';
  return ['/bin/sh', '-c', `${prepareContainerScript()}; ${cgroupDelegationScript(options.init)}; ${init}`];
}
