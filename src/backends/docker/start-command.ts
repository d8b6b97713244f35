/**
 * The container's command: a shell step that prepares the container the way the BOSH agent needs it,
 * then the stemcell's init (runit's runsvdir-start, or systemd as PID 1).
 */
import { cgroupDelegationScript, type InitSystem } from './container-init.ts';

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
    ...unmount,
    'mkdir -p /var/vcap/store /var/vcap/data/sys /var/vcap/sys',
    // Left over from a previous run of the same container (restart, attach by recreation): stale pid files.
    'rm -rf /var/vcap/data/sys/run',
  ].join('; ');
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
