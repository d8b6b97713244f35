import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOk } from './util.ts';

export const TEST_JOB = 'e2e-hello';
export const TEST_PORT = 8080;

/**
 * A release with one job whose package the agent compiles on the VM. The job (under monit) keeps
 * a marker on the persistent disk (written once, on first start), and serves a status page over
 * HTTP with busybox httpd: where the package was compiled, what is mounted at /var/vcap/store and
 * the marker. Nothing here goes through bosh: the suite reads it straight from the VM.
 */
const FILES: Record<string, { content: string; mode?: number }> = {
  'config/final.yml': { content: `name: ${TEST_JOB}\n` },
  'config/blobs.yml': { content: '--- {}\n' },
  [`packages/${TEST_JOB}/spec`]: {
    content: `---\nname: ${TEST_JOB}\ndependencies: []\nfiles:\n- ${TEST_JOB}/status.sh\n`,
  },
  [`packages/${TEST_JOB}/packaging`]: {
    content: `set -e
mkdir -p "$BOSH_INSTALL_TARGET/www/cgi-bin"
sed "s/@COMPILED@/compiled on $(hostname) at $(date -u +%FT%TZ)/" ${TEST_JOB}/status.sh > "$BOSH_INSTALL_TARGET/www/cgi-bin/status"
chmod 0755 "$BOSH_INSTALL_TARGET/www/cgi-bin/status"
`,
  },
  [`src/${TEST_JOB}/status.sh`]: {
    content: `#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
echo "compiled=@COMPILED@"
echo "store=$(grep ' /var/vcap/store ' /proc/mounts | tail -n 1)"
echo "marker=$(cat /var/vcap/store/${TEST_JOB}/marker 2>/dev/null)"
echo "started=$(cat /var/vcap/sys/run/${TEST_JOB}/started 2>/dev/null)"
`,
    mode: 0o755,
  },
  [`jobs/${TEST_JOB}/spec`]: {
    content: `---
name: ${TEST_JOB}
templates:
  ctl.erb: bin/ctl
packages:
- ${TEST_JOB}
properties:
  port:
    default: ${TEST_PORT}
`,
  },
  [`jobs/${TEST_JOB}/monit`]: {
    content: `check process ${TEST_JOB}
  with pidfile /var/vcap/sys/run/${TEST_JOB}/pid
  start program "/var/vcap/jobs/${TEST_JOB}/bin/ctl start"
  stop program "/var/vcap/jobs/${TEST_JOB}/bin/ctl stop"
  group vcap
`,
  },
  [`jobs/${TEST_JOB}/templates/ctl.erb`]: {
    content: `#!/bin/sh
RUN=/var/vcap/sys/run/${TEST_JOB}
LOG=/var/vcap/sys/log/${TEST_JOB}
case "$1" in
  start)
    mkdir -p "$RUN" "$LOG"
    if mountpoint -q /var/vcap/store; then
      mkdir -p /var/vcap/store/${TEST_JOB}
      [ -s /var/vcap/store/${TEST_JOB}/marker ] || cat /proc/sys/kernel/random/uuid > /var/vcap/store/${TEST_JOB}/marker
      sync
    fi
    date -u +%FT%TZ > "$RUN/started"
    busybox httpd -f -p <%= p('port') %> -h /var/vcap/packages/${TEST_JOB}/www >> "$LOG/httpd.log" 2>&1 &
    echo $! > "$RUN/pid"
    ;;
  stop)
    [ -f "$RUN/pid" ] && kill "$(cat "$RUN/pid")" 2>/dev/null
    rm -f "$RUN/pid"
    ;;
esac
`,
  },
};

/** Lays the release out in `dir` and builds its tarball with the bosh CLI. */
export async function buildTestRelease(bosh: string, dir: string, env: NodeJS.ProcessEnv): Promise<string> {
  for (const [path, file] of Object.entries(FILES)) {
    const full = join(dir, path);
    mkdirSync(join(full, '..'), { recursive: true });
    writeFileSync(full, file.content);
    if (file.mode) chmodSync(full, file.mode);
  }
  const tarball = join(dir, `${TEST_JOB}.tgz`);
  await runOk(bosh, ['create-release', '--dir', dir, '--force', '--name', TEST_JOB, '--tarball', tarball], {
    env,
  });
  return tarball;
}
