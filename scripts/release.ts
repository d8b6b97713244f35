// Lays out the BOSH release in release/ so that `bosh create-release` needs nothing else, then
// builds the tarball when the bosh CLI is on PATH:
//   1. builds the CPI bundle (npm run build) and copies it into release/src/bosh-ts-cpi/;
//   2. fetches the pinned Bun package with `npm pack` into .cache/release/ (once; the npm cache
//      serves it offline afterwards), checks its size, sha256 and integrity and puts it in release/blobs/;
//   3. writes release/config/blobs.yml for that one blob;
//   4. runs `bosh create-release --force --tarball ...` if `bosh` is found.
// BOSH compiles the one package offline: bosh-ts-cpi unpacks the Bun binary from the blob and compiles
// the bundle with it into one executable (`bun build --compile --bytecode`), as `npm run build` does.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  accessSync,
  constants,
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const RELEASE_DIR = join(REPO, 'release');
export const CACHE_DIR = join(REPO, '.cache', 'release');

/**
 * The Bun runtime the release compiles the CPI with: the registry's package of the official Linux
 * x64 build, at the version of the `bun` devDependency that `npm run build` (and so every test) uses.
 * Bump all fields together (and the file name in packages/bosh-ts-cpi/{spec,packaging}); the
 * tests check that they agree.
 */
export const RUNTIME_PIN = {
  name: '@oven/bun-linux-x64',
  version: '1.4.5',
  size: 51946454,
  sha256: '0c72edca57b0cbf0a07a242daf0ea8ea96711827f042b80a1c383ce1cc51c771',
  integrity:
    'sha512-IWX9BELoGHAUtMonkeSaNaZwXzRk+oDw6Mk+HBFXd3KHYIBNBsIGRupMZPcgNoDbJpLu6gAJjIoIVPZtt1aJ1g==',
} as const;

export const CPI_PACKAGE = 'bosh-ts-cpi';
/** The file name `npm pack` gives the pinned package (scope folded into the name). */
export const RUNTIME_TARBALL = `${RUNTIME_PIN.name.replace(/^@/, '').replace('/', '-')}-${RUNTIME_PIN.version}.tgz`;
/** The blob's path under release/blobs/, as packages/bosh-ts-cpi/spec names it. */
export const RUNTIME_BLOB = `bun/${RUNTIME_TARBALL}`;
/** Files scripts/release.ts copies into release/src/ (not committed: built from src/). */
export const BUILT_SOURCES = [`${CPI_PACKAGE}/cpi.cjs`];

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** Throws unless `path` is exactly the pinned runtime package tarball. */
export function verifyRuntimeTarball(path: string): void {
  const size = statSync(path).size;
  if (size !== RUNTIME_PIN.size)
    throw new Error(
      `${path}: ${size} bytes, but ${RUNTIME_PIN.name}@${RUNTIME_PIN.version} is ${RUNTIME_PIN.size} bytes`,
    );
  const sha256 = sha256File(path);
  if (sha256 !== RUNTIME_PIN.sha256)
    throw new Error(
      `${path}: sha256 ${sha256}, but ${RUNTIME_PIN.name}@${RUNTIME_PIN.version} is pinned at ${RUNTIME_PIN.sha256}`,
    );
}

/** config/blobs.yml as the bosh CLI writes it for a blob added locally (no object_id until uploaded). */
export function blobsYml(): string {
  return `---\n${RUNTIME_BLOB}:\n  size: ${RUNTIME_PIN.size}\n  sha: sha256:${RUNTIME_PIN.sha256}\n`;
}

function run(cmd: string, args: string[], opts: { cwd?: string; capture?: boolean } = {}): string {
  const res = spawnSync(cmd, args, {
    cwd: opts.cwd ?? REPO,
    encoding: 'utf8',
    stdio: opts.capture ? ['ignore', 'pipe', 'inherit'] : 'inherit',
  });
  if (res.error) throw new Error(`${cmd} ${args.join(' ')}: ${res.error.message}`);
  if (res.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited with ${res.status ?? res.signal}`);
  return res.stdout ?? '';
}

/** Returns the verified runtime package tarball, from .cache/release/ or else through `npm pack`. */
export function fetchRuntimeTarball(cacheDir = CACHE_DIR): string {
  const cached = join(cacheDir, RUNTIME_TARBALL);
  if (existsSync(cached)) {
    try {
      verifyRuntimeTarball(cached);
      return cached;
    } catch (e) {
      console.warn(`release: discarding the cached runtime package: ${(e as Error).message}`);
      unlinkSync(cached);
    }
  }
  mkdirSync(cacheDir, { recursive: true });
  const spec = `${RUNTIME_PIN.name}@${RUNTIME_PIN.version}`;
  // --prefer-offline: once npm's own cache holds the package, no network is needed.
  const out = run('npm', ['pack', spec, '--pack-destination', cacheDir, '--json', '--prefer-offline'], {
    cwd: cacheDir,
    capture: true,
  });
  const packed = (JSON.parse(out) as { filename: string; integrity: string }[])[0];
  if (!packed) throw new Error(`npm pack ${spec} reported nothing`);
  const file = join(cacheDir, packed.filename);
  try {
    if (packed.integrity !== RUNTIME_PIN.integrity)
      throw new Error(`npm pack ${spec}: integrity ${packed.integrity}, pinned ${RUNTIME_PIN.integrity}`);
    if (file !== cached)
      throw new Error(`npm pack ${spec} wrote ${packed.filename}, expected ${RUNTIME_TARBALL}`);
    verifyRuntimeTarball(file);
  } catch (e) {
    rmSync(file, { force: true });
    throw e;
  }
  return file;
}

/** Hard-links (or copies) the cached `src` to `dst` unless `dst` already is that file. */
function place(src: string, dst: string): void {
  mkdirSync(dirname(dst), { recursive: true });
  if (existsSync(dst)) {
    if (statSync(dst).ino === statSync(src).ino) return;
    unlinkSync(dst);
  }
  try {
    linkSync(src, dst);
  } catch {
    copyFileSync(src, dst);
  }
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => relative(dir, join(e.parentPath ?? e.path, e.name)));
}

/** Builds the CPI and puts everything `bosh create-release` reads in place. */
export function layOutRelease(): void {
  run('npm', ['run', 'build', '--silent']);
  const bundle = join(RELEASE_DIR, 'src', CPI_PACKAGE, 'cpi.cjs');
  mkdirSync(dirname(bundle), { recursive: true });
  copyFileSync(join(REPO, 'dist', 'cpi.cjs'), bundle);

  const tarball = fetchRuntimeTarball();
  const blobsDir = join(RELEASE_DIR, 'blobs');
  place(tarball, join(blobsDir, RUNTIME_BLOB));
  verifyRuntimeTarball(join(blobsDir, RUNTIME_BLOB));
  // blobs/ holds exactly what blobs.yml lists: a stale blob would be packaged by a matching glob.
  for (const file of listFiles(blobsDir)) if (file !== RUNTIME_BLOB) rmSync(join(blobsDir, file));
  writeFileSync(join(RELEASE_DIR, 'config', 'blobs.yml'), blobsYml());
}

/** The version of the `bun` devDependency installed in node_modules (what `npm run build` compiles with). */
export function devBunVersion(): string | undefined {
  try {
    const pkg = JSON.parse(readFileSync(join(REPO, 'node_modules', 'bun', 'package.json'), 'utf8'));
    return (pkg as { version?: string }).version;
  } catch {
    return undefined;
  }
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {}
  }
  return undefined;
}

/** `bosh create-release` into release/dev_releases/, or undefined when there is no bosh CLI. */
export function createTarball(): string | undefined {
  const bosh = onPath('bosh');
  if (!bosh) return undefined;
  const tarball = join(RELEASE_DIR, 'dev_releases', 'bosh-ts-cpi-dev.tgz');
  mkdirSync(dirname(tarball), { recursive: true });
  // --force: a dev release from the working tree, which need not be committed.
  run(bosh, ['create-release', '--dir', RELEASE_DIR, '--force', '--tarball', tarball]);
  return tarball;
}

function main(): void {
  const started = performance.now();
  const developed = devBunVersion();
  if (developed !== RUNTIME_PIN.version)
    console.warn(
      `release: npm run build compiles with bun ${developed} but the release ships ${RUNTIME_PIN.version}; ` +
        'tests here do not cover the shipped runtime',
    );
  layOutRelease();
  const tarball = createTarball();
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`release: ${relative(process.cwd(), RELEASE_DIR) || '.'} is laid out (${seconds} s)`);
  if (tarball) console.log(`release: tarball ${tarball}`);
  else
    console.log(
      'release: no bosh CLI on PATH; to build the tarball run\n' +
        `  bosh create-release --dir ${RELEASE_DIR} --force --tarball ${join(RELEASE_DIR, 'dev_releases', 'bosh-ts-cpi-dev.tgz')}`,
    );
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    main();
  } catch (e) {
    console.error(`release: ${(e as Error).message}`);
    process.exit(1);
  }
}
