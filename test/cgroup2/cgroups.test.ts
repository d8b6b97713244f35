import { cgroupScenarios } from '../support/cgroup-scenarios.ts';
import { cgroup2Target } from '../support/cgroup2-host.ts';

// `npm run test:cgroup2`: every scenario of test/integration/docker-cgroups.test.ts on a cgroup v2 Docker
// host booted here under QEMU (TCG), reached over TCP+TLS (~5 min after a ~2 min boot on this machine).
cgroupScenarios('a cgroup v2 host (Debian bookworm VM under QEMU)', cgroup2Target());
