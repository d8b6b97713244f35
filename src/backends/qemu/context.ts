import type { AgentConfig } from '../../cpi/types.ts';
import type { Logger } from '../../log/logger.ts';
import { cloudError } from '../../rpc/errors.ts';
import { FileLock, LockError } from '../../util/file-lock.ts';
import type { QemuProperties } from './config.ts';
import { DataDir } from './paths.ts';
import { QemuImg } from './qemu-img.ts';

/** How long a call waits for another CPI process working on the same VM or disk. */
const LOCK_TIMEOUT_MS = 15 * 60 * 1000;

/** Everything one call of the QEMU backend works with, built once per process. */
export class QemuContext {
  readonly data: DataDir;
  readonly img: QemuImg;

  constructor(
    readonly props: QemuProperties,
    readonly agent: AgentConfig,
    readonly directorUuid: string,
    readonly logger: Logger,
  ) {
    this.data = new DataDir(props.data_dir);
    this.img = new QemuImg(props.qemu_img_binary);
  }

  /**
   * Runs `step` holding the lock of a resource directory; `onMissing` runs instead when the
   * directory does not exist (the resource was never created or is deleted).
   */
  async locked<T>(dir: string, step: () => Promise<T>, onMissing: () => Promise<T> | T): Promise<T> {
    let lock: FileLock;
    try {
      lock = await FileLock.acquire(dir, LOCK_TIMEOUT_MS);
    } catch (e) {
      if (e instanceof LockError && e.reasonKind === 'missing') return onMissing();
      if (e instanceof LockError && e.reasonKind === 'busy')
        throw cloudError(`${e.message}: another CPI call is still working on it`, true);
      throw e;
    }
    try {
      return await step();
    } finally {
      await lock.release();
    }
  }

  /** Runs `step` only when nobody holds the directory's lock (housekeeping must never wait). */
  async lockedIfFree(dir: string, step: () => Promise<void>): Promise<void> {
    let lock: FileLock;
    try {
      lock = await FileLock.acquire(dir, 0, { wait: false });
    } catch (e) {
      if (e instanceof LockError && e.reasonKind !== 'failed') return;
      throw e;
    }
    try {
      await step();
    } finally {
      await lock.release();
    }
  }
}
