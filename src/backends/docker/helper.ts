import type { Logger } from '../../log/logger.ts';
import { DockerApiError, type DockerClient } from './engine/client.ts';
import { Containers } from './engine/containers.ts';
import { execInContainer } from './engine/exec.ts';
import { Images } from './engine/images.ts';
import { createTar } from './engine/tar.ts';
import {
  encodeHostArgs,
  type HostArgs,
  type HostOperationName,
  type HostOutcome,
  hostOutcome,
} from './host-operations.ts';
import { HOST_SCRIPT } from './host-script.ts';
import { LABELS } from './labels.ts';

/** Bumped whenever the helper's container spec changes, so an older helper is replaced. */
export const HELPER_CONTAINER = 'bosh-cpi-helper-2';

/**
 * The helper's image holds nothing but links into the host's root filesystem (bound at /host),
 * so it runs the host's own sh, mount, losetup and mkfs.ext4. Nothing is downloaded.
 */
function helperImageTar(): Buffer {
  const link = (name: string, target: string) => ({
    name,
    type: 'symlink' as const,
    mode: 0o777,
    linkTarget: target,
  });
  const dir = (name: string) => ({ name, type: 'directory' as const, mode: 0o755 });
  return createTar([
    link('bin', '/host/bin'),
    link('sbin', '/host/sbin'),
    link('usr', '/host/usr'),
    link('lib', '/host/lib'),
    link('lib64', '/host/lib64'),
    dir('etc/'),
    link('etc/ld.so.cache', '/host/etc/ld.so.cache'),
    dir('host/'),
    dir('tmp/'),
    dir('proc/'),
    dir('dev/'),
    dir('sys/'),
  ]);
}

/**
 * Finds a process in the host mount namespace of *this* engine, then runs the script there. The
 * exec'd shell's parent is the helper's containerd-shim, which lives where this engine's
 * containerd does; other dockerd processes on the machine (other engines, which come and go)
 * are only a fallback, and only while their namespace can still be opened.
 */
const ENTER_HOST = `
pid=""
p=$$
while [ -n "$p" ] && [ "$p" -gt 1 ]; do
  read -r c 2>/dev/null < "/proc/$p/comm" || break
  case "$c" in containerd-shim*) pid=$p; break;; esac
  read -r _ _ _ p _ 2>/dev/null < "/proc/$p/stat" || break
done
if [ -z "$pid" ]; then
  for name in dockerd containerd; do
    for p in /proc/[0-9]*; do
      read -r c 2>/dev/null < "$p/comm" || continue
      if [ "$c" = "$name" ] && [ -r "$p/ns/mnt" ]; then pid=$(basename "$p"); break 2; fi
    done
  done
fi
[ -n "$pid" ] || { echo "cannot find this engine's containerd-shim, dockerd or containerd among the host's processes" >&2; exit 90; }
script=$1; shift
exec nsenter -t "$pid" -m -- /bin/sh -c "$script" bosh-cpi-host "$@"
`;

export interface HostResult<Op extends HostOperationName = HostOperationName> {
  outcome: HostOutcome<Op>;
  exitCode: number;
  lines: Array<[string, string]>;
  stderr: string;
}

/**
 * Runs host-side operations through a CPI-managed container on the Docker host, created on
 * demand through the API and reused by every later call (and by concurrent CPI processes).
 */
export class HostHelper {
  private ready = false;

  constructor(
    private readonly docker: DockerClient,
    private readonly dataDir: string,
    private readonly image: string,
    private readonly logger: Logger,
  ) {}

  async run<Op extends HostOperationName>(operation: Op, args: HostArgs<Op>): Promise<HostResult<Op>> {
    const cmd = [
      '/bin/sh',
      '-c',
      ENTER_HOST,
      'bosh-cpi-host',
      HOST_SCRIPT,
      operation,
      this.dataDir,
      ...encodeHostArgs(operation, args),
    ];
    const what = `Running '${operation}' on the Docker host`;
    let result: Awaited<ReturnType<typeof execInContainer>>;
    try {
      result = await execInContainer(this.docker, HELPER_CONTAINER, cmd, what);
    } catch (e) {
      // 404: no helper yet; 409: helper stopped (engine restarted without it, or someone stopped it);
      // "Removal In Progress" (500): someone is removing it, so it is made anew once it is gone.
      if (!(e instanceof DockerApiError)) throw e;
      const beingRemoved = /removal in progress/i.test(e.apiMessage);
      if (!beingRemoved && (this.ready || (e.status !== 404 && e.status !== 409))) throw e;
      await this.ensure();
      result = await execInContainer(this.docker, HELPER_CONTAINER, cmd, what);
    }
    this.ready = true;
    const lines = result.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l): [string, string] => {
        const at = l.indexOf(' ');
        return at < 0 ? [l, ''] : [l.slice(0, at), l.slice(at + 1)];
      });
    if (result.stderr.trim()) this.logger.debug(`host ${operation}: ${result.stderr.trim()}`);
    return {
      outcome: hostOutcome(operation, result.exitCode),
      exitCode: result.exitCode,
      lines,
      stderr: result.stderr.trim(),
    };
  }

  /** Creates (or starts) the helper container; safe when several CPI processes race to do it. */
  async ensure(): Promise<void> {
    const containers = new Containers(this.docker);
    const images = new Images(this.docker);
    const [repo = this.image, tag = 'latest'] = this.image.split(':');
    if (!(await images.inspect(this.image))) {
      this.logger.info(`Importing the helper image ${this.image} on ${this.docker.endpoint}`);
      const { Readable } = await import('node:stream');
      await images.import(
        Readable.from([helperImageTar()]),
        repo,
        tag,
        [`LABEL ${LABELS.role}=helper`],
        () => {},
      );
    }
    for (const old of await containers.list([`${LABELS.role}=helper`])) {
      if (!old.Names.includes(`/${HELPER_CONTAINER}`)) {
        this.logger.info(`Removing the helper of an older CPI version, ${old.Names.join(', ')}`);
        await containers.remove(old.Id, { force: true });
      }
    }
    let existing = await containers.inspect(HELPER_CONTAINER);
    for (let i = 0; i < 100 && existing?.State?.Status === 'removing'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      existing = await containers.inspect(HELPER_CONTAINER);
    }
    if (!existing) {
      this.logger.info(`Creating the helper container ${HELPER_CONTAINER} on ${this.docker.endpoint}`);
      try {
        await containers.create(HELPER_CONTAINER, {
          Image: this.image,
          Entrypoint: ['/bin/sh', '-c', 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait $!; done'],
          Labels: { [LABELS.cpi]: 'docker', [LABELS.role]: 'helper' },
          HostConfig: {
            Binds: ['/:/host:ro'],
            PidMode: 'host',
            NetworkMode: 'none',
            CapAdd: ['SYS_ADMIN', 'SYS_PTRACE', 'SYS_CHROOT', 'MKNOD', 'NET_ADMIN'],
            SecurityOpt: ['seccomp=unconfined', 'apparmor=unconfined'],
            // Loop devices (block major 7) and /dev/loop-control.
            DeviceCgroupRules: ['b 7:* rwm', 'c 10:237 rwm'],
            RestartPolicy: { Name: 'unless-stopped' },
          },
        });
      } catch (e) {
        if (!(e instanceof DockerApiError && e.status === 409)) throw e;
      }
    }
    await containers.start(HELPER_CONTAINER);
  }
}
