import { after, before } from 'node:test';
import { cgroupScenarios } from '../support/cgroup-scenarios.ts';
import { type Cgroup2Host, startCgroup2Host } from '../support/cgroup2-host.ts';

// The slow tier (`npm run test:cgroup2`): the same scenarios as test/integration/docker-cgroups.test.ts,
// on a cgroup v2 Docker host booted here under QEMU (TCG), reached over TCP+TLS.
// CGROUP2_HOST=tcp://IP:2376 with CGROUP2_HOST_TLS_DIR (ca.pem, cert.pem, key.pem) uses a host already running.
let host: Pick<Cgroup2Host, 'endpoint' | 'tlsDir' | 'cliArgs'> | undefined;
let booted: Cgroup2Host | undefined;
before(async () => {
  const running = process.env.CGROUP2_HOST;
  const tlsDir = process.env.CGROUP2_HOST_TLS_DIR;
  if (running && tlsDir) {
    const cliArgs = ['-H', running, '--tlsverify', `--tlscacert=${tlsDir}/ca.pem`];
    host = {
      endpoint: running,
      tlsDir,
      cliArgs: [...cliArgs, `--tlscert=${tlsDir}/cert.pem`, `--tlskey=${tlsDir}/key.pem`],
    };
    return;
  }
  booted = await startCgroup2Host();
  host = booted;
  console.log(
    `cgroup v2 host ${booted.endpoint} answered ${booted.bootSeconds.toFixed(0)} s after QEMU started`,
  );
});
after(() => booted?.destroy());

cgroupScenarios('a cgroup v2 host (Debian bookworm VM under QEMU)', () => {
  if (!host) throw new Error('the cgroup v2 host did not start');
  return {
    cgroupVersion: 2,
    dockerProperties: {
      host: host.endpoint,
      tls: {
        ca: `${host.tlsDir}/ca.pem`,
        certificate: `${host.tlsDir}/cert.pem`,
        private_key: `${host.tlsDir}/key.pem`,
      },
    },
    cliArgs: host.cliArgs,
  };
});
