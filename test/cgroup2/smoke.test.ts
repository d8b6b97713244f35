import { cgroupScenarios } from '../support/cgroup-scenarios.ts';
import { cgroup2Target } from '../support/cgroup2-host.ts';

// `npm test`'s small form of the cgroup v2 tier: the same host, three of the four scenarios (`ram` from
// outside, the slowest under TCG, runs in `npm run test:cgroup2`).
cgroupScenarios('a cgroup v2 host (Debian bookworm VM under QEMU), small form', cgroup2Target(), [
  'namespace',
  'nested',
  'systemd',
]);
