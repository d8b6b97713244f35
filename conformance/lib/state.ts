import { execFileSync } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DockerApi } from './docker.ts';

/**
 * What a CPI owns, seen from outside: its labelled containers, volumes, networks and images on
 * the engine, the files, mounts and loop devices under its data_dir on the host. Two snapshots
 * differ exactly when the CPI created or removed something. Others share the engine, so only
 * resources that are provably this run's count: labelled with one of the run's director UUIDs,
 * built from its stemcell image, using its data_dir or its subnet.
 */
export interface Snapshot {
  containers: Record<string, string>;
  volumes: Record<string, string>;
  networks: Record<string, string>;
  images: Record<string, string>;
  files: Record<string, string>;
  mounts: Record<string, string>;
  loops: Record<string, string>;
  /** Host resources outside data_dir a backend probe reports (QEMU processes, taps). */
  host: Record<string, string>;
}

export const KINDS = [
  'containers',
  'volumes',
  'networks',
  'images',
  'files',
  'mounts',
  'loops',
  'host',
] as const;

export interface Scope {
  docker: DockerApi;
  dataDir: string;
  /** Director UUIDs this run put in request contexts ('' for requests without one). */
  directors: Set<string>;
  /** Subnet prefix of the run's networks, e.g. "10.252.41.". */
  subnetPrefix: string;
  /** Image IDs of the stemcells this run imported. */
  stemcellImageIds: Set<string>;
  /** The backend's host resources outside data_dir (absent for Docker: the engine shows them). */
  hostResources?: () => Record<string, string>;
}

const label = (labels: Record<string, string> | null | undefined, key: string) => labels?.[key];

function isOurs(scope: Scope, labels: Record<string, string> | null | undefined): boolean {
  if (!labels || !('io.bosh.cpi' in labels)) return false;
  if (labels['io.bosh.cpi.role'] === 'helper') return false;
  // A missing director label is not the run's: other CPIs on the engine may not set one.
  const director = labels['io.bosh.cpi.director'];
  return director !== undefined && scope.directors.has(director);
}

/** Mount points (host mount namespace) with their source devices. */
export function mountTable(): Array<{ target: string; source: string }> {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const fields = line.split(' ');
      const sep = fields.indexOf('-');
      const decode = (s: string) =>
        s.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
      return { target: decode(fields[4] ?? ''), source: decode(fields[sep + 2] ?? '') };
    });
}

/** Loop devices and their backing files. */
export function loopDevices(): Array<{ name: string; backFile: string }> {
  try {
    const out = execFileSync('losetup', ['-l', '-J'], { encoding: 'utf8' });
    if (!out.trim()) return [];
    const parsed = JSON.parse(out) as { loopdevices?: Array<{ name: string; 'back-file'?: string }> };
    return (parsed.loopdevices ?? []).map((l) => ({
      name: l.name,
      backFile: (l['back-file'] ?? '').replace(/ \(deleted\)$/, ''),
    }));
  } catch {
    return [];
  }
}

export interface FileEntry {
  path: string;
  type: 'd' | 'f' | 'l' | 'o';
  mode: number;
  size: number;
}

/** Walks a directory without descending into mounted filesystems (attached disks keep their own files). */
export function walk(root: string, maxDepth = 6): FileEntry[] {
  const mounted = new Set(mountTable().map((m) => m.target));
  const out: FileEntry[] = [];
  const visit = (dir: string, rel: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names.sort()) {
      const full = join(dir, name);
      const relPath = rel ? `${rel}/${name}` : name;
      let st: ReturnType<typeof lstatSync>;
      try {
        st = lstatSync(full);
      } catch {
        continue;
      }
      const type = st.isDirectory() ? 'd' : st.isFile() ? 'f' : st.isSymbolicLink() ? 'l' : 'o';
      out.push({ path: relPath, type, mode: st.mode & 0o7777, size: st.size });
      if (type === 'd' && depth < maxDepth && !mounted.has(full)) visit(full, relPath, depth + 1);
    }
  };
  visit(root, '', 0);
  return out;
}

export async function snapshot(scope: Scope): Promise<Snapshot> {
  const [containers, volumes, networks, images] = await Promise.all([
    scope.docker.containers(),
    scope.docker.volumes(),
    scope.docker.networks(),
    scope.docker.images(),
  ]);
  const snap: Snapshot = {
    containers: {},
    volumes: {},
    networks: {},
    images: {},
    files: {},
    mounts: {},
    loops: {},
    host: scope.hostResources?.() ?? {},
  };
  const ourVms = new Set<string>();
  const allVms = new Set<string>();
  for (const c of containers) {
    const vm = label(c.Labels, 'io.bosh.cpi.vm');
    if (vm) allVms.add(vm);
    const usesDataDir = (c.Mounts ?? []).some((m) => (m.Source ?? '').startsWith(`${scope.dataDir}/`));
    if (isOurs(scope, c.Labels) || scope.stemcellImageIds.has(c.ImageID) || usesDataDir) {
      if (vm) ourVms.add(vm);
      snap.containers[c.Id.slice(0, 12)] =
        `${c.Names.join(',')} vm=${vm ?? '-'} labelled=${'io.bosh.cpi' in (c.Labels ?? {})}`;
    }
  }
  for (const v of volumes) {
    const vm = label(v.Labels, 'io.bosh.cpi.vm');
    // Others share the engine: a volume is the run's by its director label, or by its VM.
    if (isOurs(scope, v.Labels) || (vm !== undefined && ourVms.has(vm)))
      snap.volumes[v.Name] =
        `vm=${vm ?? '-'} labelled=${'io.bosh.cpi' in (v.Labels ?? {})}${allVms.has(vm ?? '') ? '' : ' (no VM)'}`;
  }
  for (const n of networks) {
    const subnets = (n.IPAM?.Config ?? []).map((c) => c.Subnet ?? '');
    if (isOurs(scope, n.Labels) || subnets.some((s) => s.startsWith(scope.subnetPrefix)))
      snap.networks[n.Name] = `${subnets.join(',')} labelled=${'io.bosh.cpi' in (n.Labels ?? {})}`;
  }
  for (const i of images) {
    if (isOurs(scope, i.Labels) || scope.stemcellImageIds.has(i.Id))
      snap.images[i.Id.slice(7, 19)] =
        `${(i.RepoTags ?? []).join(',')} labelled=${'io.bosh.cpi' in (i.Labels ?? {})}`;
  }
  for (const f of walk(scope.dataDir)) snap.files[f.path] = f.type;
  for (const m of mountTable())
    if (m.target === scope.dataDir || m.target.startsWith(`${scope.dataDir}/`))
      snap.mounts[m.target] = m.source;
  for (const l of loopDevices())
    if (l.backFile.startsWith(`${scope.dataDir}/`)) snap.loops[l.name] = l.backFile;
  return snap;
}

export interface Diff {
  added: string[];
  removed: string[];
}

export function diff(before: Snapshot, after: Snapshot): Diff {
  const added: string[] = [];
  const removed: string[] = [];
  for (const kind of KINDS) {
    for (const k of Object.keys(after[kind]))
      if (!(k in before[kind])) added.push(`${kind}: ${k} (${after[kind][k]})`);
    for (const k of Object.keys(before[kind]))
      if (!(k in after[kind])) removed.push(`${kind}: ${k} (${before[kind][k]})`);
  }
  return { added, removed };
}

export const isEmpty = (d: Diff) => d.added.length === 0 && d.removed.length === 0;

export const describeDiff = (d: Diff) =>
  [...d.added.map((a) => `+ ${a}`), ...d.removed.map((r) => `- ${r}`)].join('\n') || '(no change)';

/**
 * Compares against `before`, ignoring changes that vanish within a moment (another user's
 * create_vm makes its volume a few ms before its container).
 */
export async function settledDiff(scope: Scope, before: Snapshot, confirmMs = 1500): Promise<Diff> {
  const first = diff(before, await snapshot(scope));
  if (isEmpty(first)) return first;
  await new Promise((r) => setTimeout(r, confirmMs));
  const second = diff(before, await snapshot(scope));
  return {
    added: second.added.filter((a) => first.added.includes(a)),
    removed: second.removed.filter((r) => first.removed.includes(r)),
  };
}

/** Waits until two snapshots in a row agree (host operations a killed CPI started may still be running). */
export async function waitForStillness(
  scope: Scope,
  opts: { quietMs?: number; maxMs?: number } = {},
): Promise<Snapshot> {
  const quiet = opts.quietMs ?? 1200;
  const deadline = Date.now() + (opts.maxMs ?? 30_000);
  let last = await snapshot(scope);
  let lastKey = JSON.stringify(last);
  let stableSince = Date.now();
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 300));
    const now = await snapshot(scope);
    const key = JSON.stringify(now);
    if (key !== lastKey) {
      last = now;
      lastKey = key;
      stableSince = Date.now();
    } else if (Date.now() - stableSince >= quiet) {
      return now;
    }
  }
  return last;
}
