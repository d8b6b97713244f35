import type { ChildProcess } from 'node:child_process';

/**
 * An exclusive advisory lock (flock(2)) on an existing file or directory, shared by every CPI
 * process.
 *
 * Node has no flock binding, so a small shell holds the lock on our behalf: it opens the path
 * (never creating it), locks it with util-linux `flock`, reports "locked" and waits for its
 * stdin to close. Releasing closes stdin; if this process dies, the kernel closes the pipe, the
 * holder exits and the lock goes with it, so a crashed CPI never leaves a resource locked.
 */
const HOLDER_SCRIPT =
  '[ -e "$1" ] || exit 66; exec 9<"$1"; flock -x $2 9 || exit 75; echo locked; exec cat >/dev/null';
const MISSING = 66;
const BUSY = 75;

export class FileLock {
  private constructor(
    readonly path: string,
    private readonly holder: ChildProcess,
  ) {}

  /**
   * Waits up to `timeoutMs` for the lock (or not at all with `wait: false`). Throws a LockError
   * with `missing` when the path does not exist and `busy` when another process holds it.
   */
  static acquire(path: string, timeoutMs: number, opts: { wait?: boolean } = {}): Promise<FileLock> {
    const waitFlag = opts.wait === false ? '-n' : `-w ${Math.max(1, Math.ceil(timeoutMs / 1000))}`;
    return new Promise((resolve, reject) => {
      const holder = process
        .getBuiltinModule('node:child_process')
        .spawn('sh', ['-c', HOLDER_SCRIPT, 'lock-holder', path, waitFlag], {
          stdio: ['pipe', 'pipe', 'pipe'],
        });
      let stderr = '';
      let settled = false;
      holder.stderr.on('data', (c: Buffer) => {
        stderr += c.toString('utf8');
      });
      holder.stdout.on('data', (c: Buffer) => {
        if (!settled && c.toString('utf8').includes('locked')) {
          settled = true;
          resolve(new FileLock(path, holder));
        }
      });
      holder.stdin.on('error', () => {});
      holder.on('error', (e) => {
        if (settled) return;
        settled = true;
        reject(new LockError(path, `cannot start the lock holder: ${e.message}`, 'failed'));
      });
      holder.on('close', (code) => {
        if (settled) return;
        settled = true;
        if (code === MISSING) reject(new LockError(path, 'it does not exist', 'missing'));
        else if (code === BUSY)
          reject(
            new LockError(
              path,
              opts.wait === false ? 'another process holds it' : `not acquired within ${timeoutMs} ms`,
              'busy',
            ),
          );
        else reject(new LockError(path, stderr.trim() || `the lock holder exited with ${code}`, 'failed'));
      });
    });
  }

  /** Runs `step` while holding the lock on `path`. */
  static async with<T>(path: string, timeoutMs: number, step: () => Promise<T>): Promise<T> {
    const lock = await FileLock.acquire(path, timeoutMs);
    try {
      return await step();
    } finally {
      await lock.release();
    }
  }

  release(): Promise<void> {
    return new Promise((resolve) => {
      if (this.holder.exitCode !== null || this.holder.signalCode !== null) {
        resolve();
        return;
      }
      this.holder.once('close', () => resolve());
      this.holder.stdin?.end();
    });
  }
}

export class LockError extends Error {
  constructor(
    readonly path: string,
    reason: string,
    readonly reasonKind: 'missing' | 'busy' | 'failed',
  ) {
    super(`Cannot lock ${path}: ${reason}`);
  }
}
