import { type Check, CheckFailure, describe } from '../util/check.ts';

/**
 * Directories a backend must never take over as its data_dir: the CPI creates, chmods (0700)
 * and later sweeps what it finds there.
 */
const SYSTEM_DIRS = new Set([
  '/',
  '/home',
  '/media',
  '/mnt',
  '/opt',
  '/root',
  '/run',
  '/srv',
  '/tmp',
  '/var',
  '/var/cache',
  '/var/lib',
  '/var/lib/docker',
  '/var/log',
  '/var/run',
  '/var/tmp',
]);
/** Trees that belong to the OS: nothing below them either. */
const SYSTEM_TREES = ['/bin', '/boot', '/dev', '/etc', '/lib', '/lib32', '/lib64', '/libx32', '/proc'].concat(
  ['/sbin', '/sys', '/usr'],
);

/** Why `path` cannot be a data_dir, or undefined when it can. */
export function dataDirProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'an absolute path';
  if ([...path].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f))
    return 'a path without control characters';
  // Docker's Binds are "source:target:options".
  if (path.includes(':')) return 'a path without ":"';
  if (path.length > 1 && path.endsWith('/')) return 'a path without a trailing "/"';
  if (path.split('/').some((segment, i) => i > 0 && (segment === '' || segment === '.' || segment === '..')))
    return 'a normalized path (no "//", "." or ".." segments)';
  if (SYSTEM_DIRS.has(path) || SYSTEM_TREES.some((tree) => path === tree || path.startsWith(`${tree}/`)))
    return 'a directory of its own, not a system directory such as /, /etc, /usr or /var/lib';
  return undefined;
}

/** A data_dir: absolute, normalized, usable in Docker binds, never a system directory. */
export const dataDir = (): Check<string> => (v, path) => {
  if (typeof v !== 'string') throw new CheckFailure(path, 'an absolute path', describe(v));
  const problem = dataDirProblem(v);
  if (problem) throw new CheckFailure(path, problem, describe(v));
  return v;
};

/** Whether `a` and `b` are the same directory or one lies inside the other (both normalized). */
export function pathsOverlap(a: string, b: string): boolean {
  const within = (inner: string, outer: string) =>
    inner === outer || outer === '/' || inner.startsWith(`${outer}/`);
  return within(a, b) || within(b, a);
}
