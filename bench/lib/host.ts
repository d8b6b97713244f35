import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';

/**
 * Raw host-side work (loop mounts, mkfs, cp) run in the Docker host's mount namespace, which is
 * where the CPI's helper runs its script. When this process already lives there (the usual
 * case on a developer machine), the commands run directly; otherwise through nsenter.
 */
export class Host {
  private readonly prefix: string[];

  constructor() {
    const pid = dockerdPid();
    const same =
      pid !== undefined && readlinkSync(`/proc/${pid}/ns/mnt`) === readlinkSync('/proc/self/ns/mnt');
    if (pid === undefined)
      throw new Error('no dockerd process found: the benchmark needs a local Docker host');
    this.prefix = same ? [] : ['nsenter', '-t', String(pid), '-m', '--'];
    this.sameNamespace = same;
  }

  readonly sameNamespace: boolean;

  /** Runs `sh -c script sh args...` and returns its wall time in ms; throws on a non-zero exit. */
  sh(script: string, args: string[] = []): number {
    const argv = [...this.prefix, '/bin/sh', '-c', script, 'sh', ...args];
    const started = performance.now();
    const res = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
    const ms = performance.now() - started;
    if (res.status !== 0) throw new Error(`host script failed (${res.status}): ${res.stderr}\n${script}`);
    return ms;
  }

  out(script: string, args: string[] = []): string {
    const argv = [...this.prefix, '/bin/sh', '-c', script, 'sh', ...args];
    return execFileSync(argv[0] as string, argv.slice(1), { encoding: 'utf8' });
  }
}

function dockerdPid(): number | undefined {
  const res = spawnSync('pgrep', ['-x', 'dockerd'], { encoding: 'utf8' });
  const first = res.stdout.split('\n').find(Boolean);
  return first ? Number(first) : undefined;
}

/** Unmounts everything under `dir` (deepest first), then removes it. Only ever called on our own data_dir. */
export function removeDataDir(host: Host, dir: string): void {
  if (!/^\/var\/lib\/bosh-bench-[0-9a-f]+$/.test(dir)) throw new Error(`refusing to remove '${dir}'`);
  host.sh(
    `d=$1
     [ -d "$d" ] || exit 0
     for i in 1 2 3; do
       findmnt -rn -o TARGET | awk -v d="$d" 'index($0, d "/") == 1 || $0 == d' | sort -r | while read -r m; do
         fsfreeze -u "$m" 2>/dev/null; umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
     done
     chattr -R -f -i "$d" 2>/dev/null; rm -rf "$d"`,
    [dir],
  );
}

export function machine(): { kernel: string; cpuModel: string } {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? 'unknown';
  return { kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(), cpuModel: model };
}
