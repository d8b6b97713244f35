import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { parseResponse, runProcess } from '../../conformance/lib/cpi-process.ts';
import { RELEASE_DIR } from '../../scripts/release.ts';

export const JOB = 'docker_cpi';
export const JOB_DIR = join(RELEASE_DIR, 'jobs', JOB);
const RENDERER = join(dirname(new URL(import.meta.url).pathname), 'render.rb');

const created: string[] = [];

export function tmp(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `release-${prefix}-`));
  created.push(dir);
  return dir;
}

/** Removes every directory tmp() made (compiled packages alone are ~150 MB). */
export function removeTmp(): void {
  for (const dir of created.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** YAML through Ruby's parser (the one BOSH's templates run on), as plain JSON values. */
export function loadYaml<T = unknown>(path: string): T {
  const script = 'require "yaml"; require "json"; puts JSON.generate(YAML.safe_load(File.read(ARGV[0])))';
  return JSON.parse(execFileSync('ruby', ['-e', script, path], { encoding: 'utf8' })) as T;
}

export interface JobSpec {
  name: string;
  templates: Record<string, string>;
  packages: string[];
  properties: Record<string, { description?: string; default?: unknown }>;
}

export interface PackageSpec {
  name: string;
  dependencies?: string[];
  files: string[];
}

export const jobSpec = () => loadYaml<JobSpec>(join(JOB_DIR, 'spec'));
export const packageSpec = (name: string) =>
  loadYaml<PackageSpec>(join(RELEASE_DIR, 'packages', name, 'spec'));
export const packageNames = () => readdirSync(join(RELEASE_DIR, 'packages')).sort();

/** Every file below `dir`, relative to it. */
export function filesUnder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

/** A package spec's `files` glob as BOSH matches it against src/ and blobs/ (`*`, `**`, `?`). */
export function globMatcher(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
      if (glob[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** The files of a package, as `bosh create-release` collects them: src/ first, then blobs/. */
export function packageFiles(spec: PackageSpec): Map<string, string> {
  const found = new Map<string, string>();
  for (const base of ['src', 'blobs']) {
    const root = join(RELEASE_DIR, base);
    for (const file of filesUnder(root))
      if (spec.files.some((g) => globMatcher(g).test(file)) && !found.has(file))
        found.set(file, join(root, file));
  }
  return found;
}

export type RenderResult = { ok: true; dir: string; cpiJson: string } | { ok: false; stderr: string };

/** Renders the docker_cpi job (or the job in `jobDir`) with these job properties into a fresh directory (or `into`). */
export function renderJob(
  properties: Record<string, unknown>,
  into?: string,
  jobDir = JOB_DIR,
): RenderResult {
  const work = tmp('render');
  const input = join(work, 'input.json');
  writeFileSync(input, JSON.stringify({ properties }));
  const out = into ?? join(work, 'out');
  const res = spawnSync('ruby', [RENDERER, jobDir, input, out], { encoding: 'utf8' });
  if (res.status !== 0) return { ok: false, stderr: res.stderr };
  return { ok: true, dir: out, cpiJson: join(out, 'config', 'cpi.json') };
}

export function renderedConfig(result: RenderResult): {
  cloud: { plugin: string; properties: Record<string, unknown> };
} {
  if (!result.ok) throw new Error(`rendering failed: ${result.stderr}`);
  return JSON.parse(readFileSync(result.cpiJson, 'utf8'));
}

/**
 * Compiles every package into `<root>/packages/<name>` the way `bosh create-env` does: files copied
 * into a compile directory, `bash -x packaging` run there with an isolated environment.
 */
export function compilePackages(root: string): string {
  const packagesDir = join(root, 'packages');
  const done = new Set<string>();
  const compile = (name: string) => {
    if (done.has(name)) return;
    const spec = packageSpec(name);
    for (const dep of spec.dependencies ?? []) compile(dep);
    const compileDir = join(root, 'compile', name);
    for (const [rel, src] of packageFiles(spec)) {
      mkdirSync(dirname(join(compileDir, rel)), { recursive: true });
      copyFileSync(src, join(compileDir, rel));
    }
    copyFileSync(join(RELEASE_DIR, 'packages', name, 'packaging'), join(compileDir, 'packaging'));
    const installDir = join(packagesDir, name);
    mkdirSync(installDir, { recursive: true });
    const res = spawnSync('bash', ['-x', 'packaging'], {
      cwd: compileDir,
      encoding: 'utf8',
      env: {
        BOSH_COMPILE_TARGET: compileDir,
        BOSH_INSTALL_TARGET: installDir,
        BOSH_PACKAGE_NAME: name,
        BOSH_PACKAGES_DIR: packagesDir,
        PATH: '/usr/local/bin:/usr/bin:/bin',
      },
    });
    if (res.status !== 0) throw new Error(`packaging of ${name} failed (${res.status}):\n${res.stderr}`);
    done.add(name);
  };
  for (const name of packageNames()) compile(name);
  return packagesDir;
}

/** Renders the job into `<root>/jobs/docker_cpi` (bin/* made executable, as the agent does). */
export function installJob(root: string, properties: Record<string, unknown>): string {
  const jobsDir = join(root, 'jobs');
  const res = renderJob(properties, join(jobsDir, JOB));
  if (!res.ok) throw new Error(`rendering failed: ${res.stderr}`);
  chmodSync(join(jobsDir, JOB, 'bin', 'cpi'), 0o755);
  return jobsDir;
}

export interface WrapperRun {
  code: number | null;
  stdout: string;
  stderr: string;
  response?: { result: unknown; error: null | { type: string; message: string }; log: string };
}

/** Runs a job's bin/cpi with one request on stdin and exactly the environment given. */
export async function runWrapper(
  wrapper: string,
  request: object,
  env: Record<string, string>,
): Promise<WrapperRun> {
  const run = await runProcess([wrapper], JSON.stringify(request), { env });
  const response = parseResponse(run.stdout);
  return { code: run.exitCode, stdout: run.stdout, stderr: run.stderr, ...(response ? { response } : {}) };
}
