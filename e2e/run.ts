/**
 * End-to-end suite with the real bosh CLI and a real stemcell (real bosh-agent), run by hand:
 *
 *   npm run e2e -- --bosh <bosh CLI> --stemcell <stemcell tgz> [--backend docker|qemu] [--director-mode]
 *                  [--docker-host unix:///var/run/docker.sock | tcp://IP:2376 --docker-tls-dir DIR]
 *                  [--nats-server /usr/sbin/nats-server] [--boot-compare] [--keep]
 *
 * create-env mode builds this repository's release (npm run release) and a small test release,
 * deploys one VM with a persistent disk through `bosh create-env`, checks it without relying on
 * bosh's output (agent over the HTTPS mbus, the job's status page), deploys again (a no-op),
 * recreates (the disk's marker survives) and deletes (nothing left). --director-mode instead makes
 * a VM through bin/cpi whose agent talks to a real nats-server with TLS client certificates.
 * Without the inputs it says what is missing and exits 0. The last line is `N passed, N failed`.
 */
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { dockerBackend, type E2eBackend, newMadeIds, qemuBackend, unusedSubnet } from './lib/backends.ts';
import { runBootCompare } from './lib/boot-compare.ts';
import { runCreateEnv } from './lib/create-env.ts';
import { runDirectorMode } from './lib/director-mode.ts';
import { Report } from './lib/report.ts';
import { buildTestRelease } from './lib/test-release.ts';
import { runOk, seconds } from './lib/util.ts';

const REPO = resolve(import.meta.dirname, '..');

interface Options {
  bosh?: string;
  stemcell?: string;
  backend: 'docker' | 'qemu';
  directorMode: boolean;
  /** Docker: boot-to-ping through the CPI against a hand-made `docker run` (no bosh CLI). */
  bootCompare: boolean;
  dockerHost: string;
  /** ca.pem, cert.pem, key.pem for a tcp:// docker host. */
  dockerTlsDir?: string;
  natsServer?: string;
  qemuDataDir?: string;
  keep: boolean;
}

function parseArgs(argv: string[]): Options {
  const opts: Options = {
    backend: 'docker',
    directorMode: false,
    bootCompare: false,
    dockerHost: 'unix:///var/run/docker.sock',
    keep: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${arg} needs a value`);
      return v;
    };
    if (arg === '--bosh') opts.bosh = resolve(value());
    else if (arg === '--stemcell') opts.stemcell = resolve(value());
    else if (arg === '--backend') {
      const b = value();
      if (b !== 'docker' && b !== 'qemu') throw new Error(`--backend must be docker or qemu, not ${b}`);
      opts.backend = b;
    } else if (arg === '--director-mode') opts.directorMode = true;
    else if (arg === '--boot-compare') opts.bootCompare = true;
    else if (arg === '--docker-host') opts.dockerHost = value();
    else if (arg === '--docker-tls-dir') opts.dockerTlsDir = resolve(value());
    else if (arg === '--nats-server') opts.natsServer = resolve(value());
    else if (arg === '--qemu-data-dir') opts.qemuDataDir = value();
    else if (arg === '--keep') opts.keep = true;
    else throw new Error(`unknown argument ${arg}`);
  }
  return opts;
}

function onPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {}
  }
  return undefined;
}

function executable(path: string | undefined): boolean {
  if (!path) return false;
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function missingInputs(opts: Options): string[] {
  const missing: string[] = [];
  if (!opts.stemcell)
    missing.push(
      '--stemcell <stemcell tgz> (a warden/docker runit stemcell, or an OpenStack/KVM qcow2 one for --backend qemu)',
    );
  else if (!existsSync(opts.stemcell)) missing.push(`--stemcell ${opts.stemcell}: no such file`);
  if (opts.directorMode) {
    if (!executable(opts.natsServer ?? onPath('nats-server')))
      missing.push('nats-server (Debian package nats-server, or --nats-server <path>)');
    if (!onPath('openssl')) missing.push('openssl');
  } else if (opts.bootCompare) {
    if (opts.backend !== 'docker')
      missing.push('--backend docker (--boot-compare is for Docker; QEMU compares in --director-mode)');
    if (!onPath('openssl')) missing.push('openssl');
  } else if (!opts.bosh) missing.push('--bosh <bosh CLI v7>');
  else if (!executable(opts.bosh)) missing.push(`--bosh ${opts.bosh}: not an executable`);
  if (!onPath('ruby')) missing.push('ruby (the bosh CLI renders job templates with it; Debian package ruby)');
  if (opts.backend === 'qemu') {
    if (!onPath('qemu-system-x86_64')) missing.push('qemu-system-x86_64 (Debian package qemu-system-x86)');
    if (!onPath('qemu-img')) missing.push('qemu-img (Debian package qemu-utils)');
  } else if (!onPath('docker'))
    missing.push('docker (the Docker CLI, used to check what the CPI left behind)');
  if (process.getuid?.() !== 0) missing.push('root (bridges, taps, loop devices)');
  return missing;
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const report = new Report();
  const missing = missingInputs(opts);
  if (missing.length) {
    report.log('e2e: not run, missing:');
    for (const m of missing) report.log(`  - ${m}`);
    report.log(
      'usage: npm run e2e -- --bosh <bosh CLI> --stemcell <tgz> [--backend docker|qemu] [--director-mode]',
    );
    report.log('0 passed, 0 failed');
    return 0;
  }
  const started = Date.now();
  const work = mkdtempSync('/var/tmp/bosh-cpi-e2e-');
  const backend: E2eBackend =
    opts.backend === 'docker'
      ? dockerBackend(opts.dockerHost, undefined, opts.dockerTlsDir)
      : qemuBackend(opts.qemuDataDir ?? '/var/lib/bosh-qemu-cpi');
  const made = newMadeIds();
  const mode = opts.directorMode ? 'director mode' : opts.bootCompare ? 'boot comparison' : 'create-env';
  report.log(`e2e: ${backend.name}, ${mode}, stemcell ${opts.stemcell}; work dir ${work}`);
  try {
    const subnet = await unusedSubnet();
    report.log(`e2e: test network ${subnet.cidr}`);
    await backend.setUp(subnet);
    if (opts.bootCompare) {
      await report.step('npm run build', () => runOk('npm', ['run', 'build', '--silent'], { cwd: REPO }));
      await runBootCompare(
        report,
        backend,
        subnet,
        { stemcell: opts.stemcell as string, work, dockerHost: opts.dockerHost },
        made,
      );
    } else if (opts.directorMode) {
      await report.step('npm run build', () => runOk('npm', ['run', 'build', '--silent'], { cwd: REPO }));
      await runDirectorMode(
        report,
        backend,
        subnet,
        {
          stemcell: opts.stemcell as string,
          natsServer: (opts.natsServer ?? onPath('nats-server')) as string,
          work,
          dockerHost: backend.name === 'docker' ? opts.dockerHost : undefined,
          handBoot:
            backend.name === 'qemu'
              ? {
                  dataDir: opts.qemuDataDir ?? '/var/lib/bosh-qemu-cpi',
                  bridge: String(backend.networkCloudProperties().bridge),
                }
              : undefined,
        },
        made,
      );
    } else {
      const bosh = opts.bosh as string;
      // The bosh CLI keeps installations and caches under $HOME/.bosh: a private HOME leaves the user's alone.
      const home = join(work, 'home');
      const bin = join(work, 'bin');
      mkdirSync(home);
      mkdirSync(bin);
      symlinkSync(bosh, join(bin, 'bosh'));
      const env = {
        ...process.env,
        HOME: home,
        PATH: `${bin}${delimiter}${process.env.PATH}`,
        BOSH_NON_INTERACTIVE: 'true',
      };
      const cpiRelease = join(REPO, 'release', 'dev_releases', 'bosh-ts-cpi-dev.tgz');
      const built = await report.step('npm run release (the CPI release tarball)', async () => {
        // The user's own HOME: release/.dev_builds indexes blobs in $HOME/.bosh/cache.
        await runOk('npm', ['run', 'release', '--silent'], {
          cwd: REPO,
          env: { ...process.env, PATH: env.PATH },
        });
        if (!existsSync(cpiRelease)) throw new Error(`npm run release made no ${cpiRelease}`);
      });
      let testRelease = '';
      const builtTest = await report.step('bosh create-release (the test release)', async () => {
        testRelease = await buildTestRelease(bosh, join(work, 'test-release'), env);
      });
      if (built && builtTest)
        await runCreateEnv(
          report,
          backend,
          subnet,
          { bosh, stemcell: opts.stemcell as string, cpiRelease, testRelease, work, env },
          made,
        );
    }
  } catch (e) {
    report.fail('e2e set-up', e instanceof Error ? e.message : String(e));
  } finally {
    await backend.tearDown().catch((e) => report.fail('e2e tear-down', String(e)));
  }
  if (!opts.keep && report.failed === 0) rmSync(work, { recursive: true, force: true });
  else report.log(`e2e: work dir kept: ${work}`);
  report.log(`e2e: total ${seconds(Date.now() - started)}`);
  report.log(report.summary());
  return report.failed === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`e2e: ${e instanceof Error ? e.message : String(e)}`);
    console.log('0 passed, 1 failed');
    process.exit(1);
  },
);
