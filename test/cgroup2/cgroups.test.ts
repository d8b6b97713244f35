import { after, before } from 'node:test';
import { cgroupScenarios } from '../support/cgroup-scenarios.ts';
import { type Cgroup2Host, startCgroup2Host } from '../support/cgroup2-host.ts';

// The slow tier (`npm run test:cgroup2`): the same scenarios as test/integration/docker-cgroups.test.ts,
// on a cgroup v2 Docker host booted here under QEMU (TCG), reached over TCP+TLS.
let host: Cgroup2Host | undefined;
before(async () => {
  host = await startCgroup2Host();
  console.log(`cgroup v2 host ${host.endpoint} answered ${host.bootSeconds.toFixed(0)} s after QEMU started`);
});
after(() => host?.destroy());

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
