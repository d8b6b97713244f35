import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** The real docker CLI, to look at what the CPI did independently of the CPI's own client. */
export function docker(...args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

export function dockerTry(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync('docker', args, { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: (r.stdout ?? '').trim(), stderr: (r.stderr ?? '').trim() };
}

/** Runs a shell command inside a VM's container. */
export function inVm(containerIdOrName: string, script: string): string {
  return docker('exec', containerIdOrName, '/bin/sh', '-c', script);
}

export function containerOf(vmCid: string): string {
  const id = docker('ps', '-aq', '--no-trunc', '--filter', `label=io.bosh.cpi.vm=${vmCid}`);
  if (!id) throw new Error(`no container for ${vmCid}`);
  return id.split('\n')[0] as string;
}

export function ensureDockerRunning(): void {
  if (dockerTry('version', '--format', '{{.Server.Version}}').code === 0) return;
  throw new Error(
    'No Docker engine answers on /var/run/docker.sock: run `bash scripts/setup.sh` first (it installs and starts dockerd)',
  );
}

function usedCidrs(): string[] {
  const routes = execFileSync('ip', ['-4', 'route'], { encoding: 'utf8' });
  const cidrs = [...routes.matchAll(/^(\d+\.\d+\.\d+\.\d+(?:\/\d+)?)/gm)].map((m) => m[1] as string);
  const networks = docker('network', 'ls', '-q').split('\n').filter(Boolean);
  for (const n of networks) {
    const subnets = docker('network', 'inspect', n, '--format', '{{range .IPAM.Config}}{{.Subnet}} {{end}}');
    cidrs.push(...subnets.split(' ').filter(Boolean));
  }
  return cidrs;
}

/** A /24 inside `prefix` (e.g. "10.251") that no route or Docker network on this machine uses. */
export function freeSubnet(prefix: string): {
  base: string;
  cidr: string;
  gateway: string;
  ip: (host: number) => string;
} {
  const used = usedCidrs().join(' ');
  for (let attempt = 0; attempt < 200; attempt++) {
    const third = 10 + Math.floor(Math.random() * 240);
    const base = `${prefix}.${third}`;
    if (used.includes(`${base}.`)) continue;
    return { base, cidr: `${base}.0/24`, gateway: `${base}.1`, ip: (host) => `${base}.${host}` };
  }
  throw new Error(`no free /24 in ${prefix}.0.0/16`);
}

export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** Removes everything the CPI created for one test director (containers, volumes, networks, images). */
export function removeAllFor(directorUuid: string): void {
  const label = `label=io.bosh.cpi.director=${directorUuid}`;
  const containers = docker('ps', '-aq', '--filter', label).split('\n').filter(Boolean);
  if (containers.length) dockerTry('rm', '-f', ...containers);
  const volumes = docker('volume', 'ls', '-q', '--filter', label).split('\n').filter(Boolean);
  if (volumes.length) dockerTry('volume', 'rm', ...volumes);
  const networks = docker('network', 'ls', '-q', '--filter', label).split('\n').filter(Boolean);
  for (const n of networks) dockerTry('network', 'rm', n);
  const images = docker('images', '-q', '--filter', label).split('\n').filter(Boolean);
  if (images.length) dockerTry('rmi', '-f', ...new Set(images));
}

/**
 * Removes a CPI data dir on this (the Docker) host. A test that failed half-way can leave disks
 * mounted in it (their containers are gone by now): everything mounted under it goes first,
 * deepest first, so no loop device is left behind.
 */
export function removeDataDir(dataDir: string): void {
  if (!dataDir.startsWith('/var/lib/bosh-')) throw new Error(`refusing to remove ${dataDir}`);
  const mounted = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4] ?? '')
    .filter((at) => at.startsWith(`${dataDir}/`))
    .sort((a, b) => b.length - a.length);
  for (const at of mounted) spawnSync('umount', [at]);
  // Mount points of disks still recorded as attached are immutable (chattr +i) while unmounted.
  spawnSync('chattr', ['-R', '-f', '-i', dataDir]);
  spawnSync('rm', ['-rf', '--one-file-system', dataDir]);
}
