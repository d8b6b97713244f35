import { cgroupScenarios } from '../support/cgroup-scenarios.ts';
import { ensureDockerRunning } from '../support/docker.ts';

// This machine's engine: cgroup v1 (the cgroup v2 host is the VM of test/cgroup2).
ensureDockerRunning();
cgroupScenarios("this machine's engine (cgroup v1)", () => ({
  cgroupVersion: 1,
  dockerProperties: {},
  cliArgs: [],
}));
