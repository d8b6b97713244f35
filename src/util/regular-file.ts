import type { Stats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';

/** What a path that must be a regular file turned out to be, for messages. */
export function fileKind(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isDirectory()) return 'a directory';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

export class NotRegularFile extends Error {
  constructor(
    readonly path: string,
    readonly kind: string,
  ) {
    super(`'${path}' is ${kind}, not a regular file`);
  }
}

/**
 * Opens a file for reading only when it is a regular file itself: a symbolic link is not followed
 * (O_NOFOLLOW), and a device or FIFO is refused before anything is read from it (O_NONBLOCK keeps
 * the open of a FIFO from waiting for a writer). The check is on the open descriptor, so the
 * file cannot be swapped between check and read. A file with several hard links is refused too
 * when `singleLink` is set (an extracted member linked to a file elsewhere).
 */
export async function openRegularFile(
  path: string,
  opts: { singleLink?: boolean } = {},
): Promise<{ handle: FileHandle; size: number }> {
  let handle: FileHandle;
  try {
    const { constants, promises } = process.getBuiltinModule('node:fs');
    handle = await promises.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new NotRegularFile(path, 'a symbolic link');
    throw e;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new NotRegularFile(path, fileKind(st));
    if (opts.singleLink && st.nlink !== 1) throw new NotRegularFile(path, `a hard link (${st.nlink} names)`);
    return { handle, size: st.size };
  } catch (e) {
    await handle.close();
    throw e;
  }
}
