import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createTar, type TarEntry } from '../../src/backends/docker/engine/tar.ts';

/**
 * A warden-style stemcell built at test time from real files: Debian's static busybox, the
 * directories a BOSH stemcell has, and a tiny stand-in agent started the way the real one is
 * (`/usr/sbin/runsvdir-start`). It waits for its settings file, then records what it sees.
 */
const FAKE_AGENT = `#!/bin/sh
echo "$(date +%s) start disks=$(grep -c " /warden-cpi-dev/disk-" /proc/self/mountinfo)" >> /var/vcap/bosh/boots
while [ ! -s /var/vcap/bosh/warden-cpi-agent-env.json ]; do sleep 0.2; done
echo ready > /var/vcap/bosh/agent-ready
trap 'exit 0' TERM INT
while :; do sleep 3600 & wait $!; done
`;

export interface BuiltStemcell {
  dir: string;
  imagePath: string;
  manifestPath: string;
  bytes: number;
}

/** The unit that starts the stand-in agent when systemd is PID 1 (what a systemd stemcell's agent service does). */
const AGENT_UNIT = `[Unit]
Description=stand-in BOSH agent
DefaultDependencies=no

[Service]
ExecStart=/usr/sbin/runsvdir-start
`;

/** systemd's own units for halting, so `docker stop` (SIGRTMIN+3) shuts it down as on a real stemcell. */
const SHUTDOWN_UNITS = [
  'halt.target',
  'systemd-halt.service',
  'poweroff.target',
  'systemd-poweroff.service',
  'shutdown.target',
  'umount.target',
  'final.target',
];

/**
 * The real systemd of this machine (Debian's `systemd` package) with the shared libraries it links,
 * as PID 1 of the test stemcell: default.target wants only the stand-in agent.
 */
function systemdEntries(f: (name: string, content: string | Buffer, mode?: number) => TarEntry): TarEntry[] {
  const binaries = ['/lib/systemd/systemd', '/lib/systemd/systemd-shutdown', '/bin/systemctl'];
  const libraries = execFileSync('ldd', binaries, { encoding: 'utf8' })
    .split('\n')
    .map((line) => /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line)?.[1])
    .filter((path): path is string => path !== undefined);
  const files = [...new Set([...binaries, ...libraries])];
  const entries: TarEntry[] = [];
  const dirs = new Set<string>();
  for (const path of [...files, ...SHUTDOWN_UNITS.map((u) => `/lib/systemd/system/${u}`)]) {
    const parts = path.split('/').slice(1, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  for (const dir of [...dirs, 'etc/systemd', 'etc/systemd/system'].sort())
    entries.push({ name: `${dir}/`, type: 'directory', mode: 0o755 });
  for (const path of files) entries.push(f(path.slice(1), readFileSync(path), 0o755));
  for (const unit of SHUTDOWN_UNITS)
    entries.push(f(`lib/systemd/system/${unit}`, readFileSync(`/lib/systemd/system/${unit}`)));
  entries.push(
    f('etc/systemd/system/default.target', '[Unit]\nDescription=test stemcell\nWants=bosh-agent.service\n'),
    f('etc/systemd/system/bosh-agent.service', AGENT_UNIT),
    f('etc/os-release', 'ID=busybox\nNAME="BOSH test stemcell"\n'),
    f('etc/machine-id', ''),
    { name: 'sbin/init', type: 'symlink', mode: 0o777, linkTarget: '/lib/systemd/systemd' },
  );
  return entries;
}

export function buildStemcell(
  dir: string,
  opts: { paddingMiB?: number; init?: 'runit' | 'systemd' } = {},
): BuiltStemcell {
  mkdirSync(dir, { recursive: true });
  const busybox = readFileSync('/bin/busybox');
  const applets = execFileSync('/bin/busybox', ['--list'], { encoding: 'utf8' }).split('\n').filter(Boolean);
  const d = (name: string, mode = 0o755): TarEntry => ({ name: `${name}/`, type: 'directory', mode });
  const f = (name: string, content: string | Buffer, mode = 0o644): TarEntry => ({
    name,
    type: 'file',
    mode,
    content: Buffer.isBuffer(content) ? content : Buffer.from(content),
  });
  const entries: TarEntry[] = [
    d('bin'),
    d('sbin'),
    d('usr'),
    d('usr/bin'),
    d('usr/sbin'),
    d('etc'),
    d('tmp', 0o1777),
    d('proc'),
    d('sys'),
    d('dev'),
    d('root', 0o700),
    d('var'),
    d('var/vcap'),
    d('var/vcap/bosh'),
    d('var/vcap/data'),
    d('var/vcap/store'),
    d('warden-cpi-dev'),
    f('bin/busybox', busybox, 0o755),
    f('etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nvcap:x:1000:1000::/home/vcap:/bin/sh\n'),
    f('etc/group', 'root:x:0:\nvcap:x:1000:\n'),
    f('etc/hosts', '127.0.0.1 localhost\n'),
    f('etc/hostname', 'stemcell\n'),
    f('etc/resolv.conf', ''),
    f('usr/sbin/runsvdir-start', FAKE_AGENT, 0o755),
    f(
      'var/vcap/bosh/agent.json',
      JSON.stringify({
        Platform: {
          Linux: {
            UseDefaultTmpDir: true,
            UsePreformattedPersistentDisk: true,
            BindMountPersistentDisk: true,
            SkipDiskSetup: true,
          },
        },
        Infrastructure: {
          Settings: { Sources: [{ Type: 'File', SettingsPath: '/var/vcap/bosh/warden-cpi-agent-env.json' }] },
        },
      }),
    ),
  ];
  if (opts.init === 'systemd') entries.push(...systemdEntries(f));
  for (const applet of applets) {
    if (applet === 'busybox') continue;
    entries.push({ name: `bin/${applet}`, type: 'symlink', mode: 0o777, linkTarget: '/bin/busybox' });
  }
  if (opts.paddingMiB) {
    // Incompressible filler, for benchmarks that need a stemcell of realistic size.
    const chunk = Buffer.alloc(1 << 20);
    const parts: Buffer[] = [];
    let seed = 12345;
    for (let i = 0; i < opts.paddingMiB; i++) {
      for (let j = 0; j < chunk.length; j += 4) {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        chunk.writeUInt32LE(seed, j);
      }
      parts.push(Buffer.from(chunk));
    }
    entries.push(d('opt'), f('opt/filler.bin', Buffer.concat(parts)));
  }
  const names = new Set<string>();
  const unique = entries.filter((e) => !names.has(e.name) && names.add(e.name));
  const image = gzipSync(createTar(unique), { level: 1 });
  const imagePath = join(dir, 'image');
  writeFileSync(imagePath, image);
  const sha1 = execFileSync('sha1sum', [imagePath], { encoding: 'utf8' }).split(' ')[0];
  const manifestPath = join(dir, 'stemcell.MF');
  writeFileSync(
    manifestPath,
    `---\nname: bosh-busybox-test-stemcell\nversion: '0.1'\noperating_system: busybox\nsha1: ${sha1}\napi_version: 3\nstemcell_formats:\n- warden-tar\ncloud_properties: ${opts.init === 'systemd' ? '{init: systemd}' : '{}'}\n`,
  );
  return { dir, imagePath, manifestPath, bytes: image.length };
}
