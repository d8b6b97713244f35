import type { Logger } from '../../log/logger.ts';
import { DockerApiError, type DockerClient } from './engine/client.ts';
import { Containers, isStartRace } from './engine/containers.ts';
import { execInContainer } from './engine/exec.ts';
import { Images } from './engine/images.ts';
import { createTar } from './engine/tar.ts';
import {
  encodeWord,
  FIND_ENGINE_SHIM,
  fitsOneRequest,
  HELPER_SERVICE,
  HelperConnection,
  type ServiceResult,
  scriptHash,
  UNKNOWN_SCRIPT,
} from './helper-service.ts';
import {
  encodeHostArgs,
  type HostArgs,
  type HostOperationName,
  type HostOutcome,
  hostOutcome,
} from './host-operations.ts';
import { DATA_DIRS, hostScript } from './host-script.ts';
import { LABELS } from './labels.ts';

/**
 * Bumped whenever the helper's container spec changes, so an older helper is replaced. Version 5
 * runs the helper service (helper-service.ts); 7 adds its lookups (6 named a design since dropped).
 * Helpers of other versions are left running: a CPI build still using one keeps working; remove
 * an idle one by hand.
 */
export const HELPER_CONTAINER = 'bosh-cpi-helper-7';
/** Earlier helpers of this same design, which nothing uses any more. */
const SUPERSEDED_HELPERS = ['bosh-cpi-helper-3'];
/** How long a start of the helper waits out a start racing it before the helper is made anew. */
const HELPER_START_RACE_MS = 10_000;
/** Host operations may wait for a VM to release a disk, copy a disk, or run mkfs on a large one. */
const OPERATION_TIMEOUT_MS = 600_000;

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
${FIND_ENGINE_SHIM}if [ -z "$pid" ]; then
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

/**
 * The helper's command. It starts with the engine (restart policy), so after a host reboot it
 * mounts every data dir's disks again (the data dirs the host script recorded in DATA_DIRS), then
 * starts the VM containers the engine could not start because their mounts/ was not shared yet
 * (through the engine's unix socket with the host's curl, when both exist; otherwise the next
 * attach_disk or reboot_vm starts them), in the background. Then it serves host operations on its
 * stdin (helper-service.ts); exec'd operations work alongside.
 */
export const HELPER_MAIN = `
enter=$1; script=$2
trap "exit 0" TERM INT
(
  exec </dev/null
  if [ -r "/host${DATA_DIRS}" ]; then
    while read -r d; do
      [ -d "/host$d/mounts" ] && sh -c "$enter" bosh-cpi-host "$script" restore "$d" || true
    done < "/host${DATA_DIRS}"
  fi
  sock="/host\${BOSH_CPI_ENGINE_SOCKET:-/nonexistent}"
  if [ -S "$sock" ] && command -v curl >/dev/null 2>&1; then
    api() { curl -sf --max-time 30 --unix-socket "$sock" "$@"; }
    for delay in 2 5 10 20 30; do
      sleep "$delay"
      for id in $(api 'http://engine/containers/json?all=1&filters=%7B%22label%22%3A%5B%22${LABELS.vm}%22%5D%2C%22status%22%3A%5B%22exited%22%2C%22created%22%5D%7D' | grep -o '"Id":"[0-9a-f]*"' | grep -o '[0-9a-f]\\{64\\}'); do
        api "http://engine/containers/$id/json" | grep -q 'shared or slave mount' || continue
        api -X POST "http://engine/containers/$id/start" >/dev/null && echo "started VM container $id after the engine restarted"
      done
    done
  fi
) &
${HELPER_SERVICE}`;

/** Writes the script ($2) as /tmp/bosh-cpi-scripts/<hash> ($1) through a temporary name, then <hash>.ok. */
const INSTALL_SCRIPT = `d=/tmp/bosh-cpi-scripts; t="$d/.$1.$$"
mkdir -p "$d" && printf '%s' "$2" > "$t" && mv -f "$t" "$d/$1" && : > "$d/$1.ok"`;

export interface HostResult<Op extends HostOperationName = HostOperationName> {
  outcome: HostOutcome<Op>;
  exitCode: number;
  lines: Array<[string, string]>;
  stderr: string;
}

let scriptHashMemo: string | undefined;
/** The host script's hash, which names it to the helper service. */
const hostScriptHash = (): string => {
  scriptHashMemo ??= scriptHash(hostScript());
  return scriptHashMemo;
};

/**
 * Runs host-side operations through a CPI-managed container on the Docker host, created on
 * demand through the API and reused by every later call (and by concurrent CPI processes).
 */
export class HostHelper {
  constructor(
    private readonly docker: DockerClient,
    private readonly dataDir: string,
    private readonly image: string,
    private readonly logger: Logger,
    private readonly startRaceMs = HELPER_START_RACE_MS,
  ) {}

  private connection: Promise<HelperConnection> | undefined;
  /** One ensure() at a time in this process: concurrent operations that found no helper share it. */
  private ensuring: Promise<void> | undefined;
  private scriptInstalled = false;

  async run<Op extends HostOperationName>(operation: Op, args: HostArgs<Op>): Promise<HostResult<Op>> {
    const argv = [operation, this.dataDir, ...encodeHostArgs(operation, args)];
    const what = `Running '${operation}' on the Docker host`;
    const words = [hostScriptHash(), ...argv.map(encodeWord)];
    const viaService = fitsOneRequest(words);
    const result = await this.withHelper(() => (viaService ? this.request(words) : this.exec(argv, what)));
    const lines = result.stdout
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l): [string, string] => {
        const at = l.indexOf(' ');
        return at < 0 ? [l, ''] : [l.slice(0, at), l.slice(at + 1)];
      });
    if (result.stderr.trim()) this.logger.debug(`host ${operation}: ${result.stderr.trim()}`);
    for (const [key, text] of lines)
      if (key === 'warning') this.logger.warn(`Docker host (${operation}): ${text}`);
    return {
      outcome: hostOutcome(operation, result.exitCode),
      exitCode: result.exitCode,
      lines,
      stderr: result.stderr.trim(),
    };
  }

  /**
   * What the helper sees at `relative` under the data dir, answered by the helper service itself
   * (no process started; see HELPER_SERVICE). Undefined is no answer: the host may still have
   * it, and only an operation can tell.
   */
  async look(relative: string): Promise<'file' | 'dir' | undefined> {
    const seen = await this.lookup('look', relative);
    return seen === 'file' || seen === 'dir' ? seen : undefined;
  }

  /** A small text file's content (one unterminated line) as the helper sees it; undefined as for look. */
  async readText(relative: string): Promise<string | undefined> {
    const seen = await this.lookup('read', relative);
    return seen?.startsWith('text ') ? seen.slice(5) : undefined;
  }

  private async lookup(kind: 'look' | 'read', relative: string): Promise<string | undefined> {
    const words = [kind, encodeWord(`${this.dataDir}/${relative}`)];
    if (!fitsOneRequest(words)) return undefined;
    const result = await this.withHelper(() => this.request(words, { repeatable: true }));
    return result.exitCode === 0 ? result.stdout.replace(/\n$/, '') : undefined;
  }

  /**
   * Runs `step` against the helper, creating or starting it when the engine says it is missing:
   * 404, no helper yet; 409, stopped (engine restarted without it, or someone stopped it);
   * "Removal In Progress" (500), someone is removing it, so it is made anew once it is gone.
   */
  private async withHelper<T>(step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (e) {
      if (!(e instanceof DockerApiError)) throw e;
      const beingRemoved = /removal in progress/i.test(e.apiMessage);
      if (!beingRemoved && e.status !== 404 && e.status !== 409) throw e;
      this.connection = undefined;
      this.ensuring ??= this.ensure().finally(() => {
        this.ensuring = undefined;
      });
      await this.ensuring;
      return step();
    }
  }

  /**
   * Opens this process's attachment to the helper ahead of its first operation, while the caller
   * waits on the engine for something else. A failure is met again, and handled, by that operation.
   */
  prepare(): void {
    this.connection ??= HelperConnection.open(this.docker, HELPER_CONTAINER);
    this.connection.catch(() => {});
  }

  /**
   * One request to the helper service over this process's attachment (opened on first use, for
   * a repeatable one without reading the helper's state first: see HelperConnection).
   */
  private async request(words: string[], { repeatable = false } = {}): Promise<ServiceResult> {
    this.connection ??= HelperConnection.open(this.docker, HELPER_CONTAINER, { checkState: !repeatable });
    let connection: HelperConnection;
    try {
      connection = await this.connection;
    } catch (e) {
      this.connection = undefined;
      throw e;
    }
    try {
      let result = await connection.run(words, OPERATION_TIMEOUT_MS, { repeatable });
      if (result.exitCode === UNKNOWN_SCRIPT && !this.scriptInstalled) {
        await this.installScript();
        result = await connection.run(words, OPERATION_TIMEOUT_MS, { repeatable });
      }
      return result;
    } catch (e) {
      // A lost connection (helper removed or restarted): the next operation attaches again.
      this.connection = undefined;
      throw e;
    }
  }

  /**
   * Puts this CPI's host script into the helper, the `.ok` marker after it (see helper-service.ts),
   * through an exec. Not an archive request: for one, Docker 20.10 binds the container's volumes
   * under its root on the host, here the host's whole `/` (recursively), and on a host whose `/` is
   * shared that bind propagates into every helper's mount namespace and is not all taken back: each
   * archive request into a helper left thousands of mounts in them, until the host's mounts failed
   * with ENOSPC (fs.mount-max), container starts included.
   */
  private async installScript(): Promise<void> {
    const hash = hostScriptHash();
    const res = await execInContainer(
      this.docker,
      HELPER_CONTAINER,
      ['/bin/sh', '-c', INSTALL_SCRIPT, 'bosh-cpi-install', hash, hostScript()],
      'Installing the host script in the helper',
    );
    if (res.exitCode !== 0)
      throw new Error(
        `Installing the host script in the helper ${HELPER_CONTAINER} failed (exit ${res.exitCode}): ${res.stderr.trim()}`,
      );
    this.scriptInstalled = true;
  }

  /** The same operation through an exec in the helper: for requests too long for one service line. */
  private exec(argv: string[], what: string): Promise<ServiceResult> {
    const cmd = ['/bin/sh', '-c', ENTER_HOST, 'bosh-cpi-host', hostScript(), ...argv];
    return execInContainer(this.docker, HELPER_CONTAINER, cmd, what, OPERATION_TIMEOUT_MS);
  }

  /** Creates (or starts) the helper container; safe when several CPI processes race to do it. */
  async ensure(replaceStuck = true): Promise<void> {
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
      if (SUPERSEDED_HELPERS.some((name) => old.Names.includes(`/${name}`))) {
        this.logger.info(`Removing the helper of an older CPI version, ${old.Names.join(', ')}`);
        await containers.remove(old.Id, { force: true });
      }
    }
    const socket = this.docker.endpoint.startsWith('unix://') ? this.docker.endpoint.slice(7) : '';
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
          Entrypoint: ['/bin/sh', '-c', HELPER_MAIN, 'bosh-cpi-helper', ENTER_HOST, hostScript()],
          Env: socket ? [`BOSH_CPI_ENGINE_SOCKET=${socket}`] : [],
          // Stdin stays open across attachments: every CPI process writes its requests there.
          OpenStdin: true,
          StdinOnce: false,
          Labels: { [LABELS.cpi]: 'docker', [LABELS.role]: 'helper' },
          HostConfig: {
            // Its stdout carries every answer of the service: nothing to keep.
            LogConfig: { Type: 'none', Config: {} },
            Binds: ['/:/host:ro'],
            PidMode: 'host',
            NetworkMode: 'none',
            // LINUX_IMMUTABLE: mount points are immutable while their disk is not mounted (host-script.ts).
            CapAdd: ['SYS_ADMIN', 'SYS_PTRACE', 'SYS_CHROOT', 'MKNOD', 'NET_ADMIN', 'LINUX_IMMUTABLE'],
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
    // Another process's create may hold the name (409 above) a moment before the engine knows the
    // container by it (404 here).
    for (let attempt = 1; ; attempt++) {
      try {
        await containers.start(HELPER_CONTAINER, this.startRaceMs);
        return;
      } catch (e) {
        if (isStartRace(e) && replaceStuck) {
          await this.replaceStuckHelper(containers, e);
          return this.ensure(false);
        }
        if (!(e instanceof DockerApiError && e.status === 404) || attempt >= 50) throw e;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /**
   * After an engine restart the engine can keep refusing to start the helper ("task …: already
   * exists": containerd still holds a task of it that the engine no longer tracks), however long
   * one waits. The helper holds no state, so it is removed and made anew: the new container has
   * another ID, which no stale task holds. It is removed by its ID, so a process that got here
   * later never removes the helper another process has just made.
   */
  private async replaceStuckHelper(containers: Containers, refusal: Error): Promise<void> {
    const stuck = await containers.inspect(HELPER_CONTAINER);
    if (!stuck || stuck.State.Running) return;
    this.logger.warn(
      `The engine keeps refusing to start the helper ${HELPER_CONTAINER} (${refusal.message}); making it anew`,
    );
    await containers.remove(stuck.Id, { force: true });
  }
}
