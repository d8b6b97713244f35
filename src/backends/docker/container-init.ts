/**
 * What a VM container needs from the engine to run its init (runit or systemd) and, inside the VM,
 * container runtimes of its own (runc, containerd, garden) — on cgroup v1 and cgroup v2 hosts.
 *
 * Every VM gets a private cgroup namespace: /sys/fs/cgroup inside shows the container's own cgroup
 * as its root, so what the VM writes there stays in its own subtree. The engine mounts that
 * hierarchy read-only; the start command makes it writable (see cgroupDelegationScript) so nested
 * runtimes and systemd can create cgroups and set limits below the VM's. The VM's own `cpu`/`ram`
 * limits are set by the engine on the container's cgroup, outside the VM's reach on cgroup v2
 * hosts (the kernel's `nsdelegate`: a namespace root's resource files are not writable from inside).
 * On cgroup v1 there is no such protection: a VM holding CAP_SYS_ADMIN can always mount a v1
 * hierarchy and raise its own limit; the private namespace at least confines it to its own cgroup,
 * where the engine's default (the host's namespace) exposes every cgroup on the host.
 */
import type { DockerProperties } from './config.ts';

export type InitSystem = 'runit' | 'systemd';

/** The image label (set from stemcell.MF `cloud_properties.init` at import) that asks for systemd. */
export const STEMCELL_INIT_LABEL = 'io.bosh.stemcell.init';

/**
 * systemd when the config says so for every VM (`start_containers_with_systemd`), or when the
 * stemcell's image carries `io.bosh.stemcell.init=systemd`; otherwise runit (the warden stemcells).
 */
export function chooseInit(
  props: Pick<DockerProperties, 'start_containers_with_systemd'>,
  imageLabels: Record<string, string> | null | undefined,
): { init: InitSystem; reason: string } {
  if (props.start_containers_with_systemd)
    return { init: 'systemd', reason: 'docker.start_containers_with_systemd is set' };
  const label = imageLabels?.[STEMCELL_INIT_LABEL];
  if (label === 'systemd')
    return { init: 'systemd', reason: `the stemcell's image says ${STEMCELL_INIT_LABEL}=systemd` };
  return {
    init: 'runit',
    reason: label ? `the stemcell's image says ${STEMCELL_INIT_LABEL}=${label}` : 'default',
  };
}

/** Tmpfs mounts systemd expects; /tmp stays on the container's disk (the agent downloads blobs there). */
const SYSTEMD_TMPFS: Record<string, string> = {
  '/run': 'rw,exec,nosuid,nodev,mode=755',
  '/run/lock': 'rw,noexec,nosuid,nodev,size=5m',
};

export interface InitContainerConfig {
  /** Top-level fields of the container's create request. */
  config: { Env?: string[]; StopSignal?: string };
  /** Fields of its HostConfig. */
  hostConfig: { CgroupnsMode: 'private'; Tmpfs?: Record<string, string> };
}

/**
 * systemd as PID 1: it learns it runs in a container from `container=docker` (no hardware units, no
 * udev), halts on SIGRTMIN+3 (what `docker stop` then sends), and starts no gettys on consoles a
 * container does not have (`SYSTEMD_GETTY_AUTO=0`, systemd ≥ 250; stemcells mask them too).
 */
export function initContainerConfig(init: InitSystem): InitContainerConfig {
  if (init === 'runit') return { config: {}, hostConfig: { CgroupnsMode: 'private' } };
  return {
    config: { Env: ['container=docker', 'SYSTEMD_GETTY_AUTO=0'], StopSignal: 'SIGRTMIN+3' },
    hostConfig: { CgroupnsMode: 'private', Tmpfs: { ...SYSTEMD_TMPFS } },
  };
}

/**
 * Shell (POSIX sh) that hands the VM its cgroup subtree before init starts. The engine mounts the
 * private cgroup hierarchy read-only; a bind remount makes this mount writable (it changes only
 * this mount's flags, never the hierarchy's). Needs CAP_SYS_ADMIN, as the agent's own mounts do;
 * without it the hierarchy simply stays read-only.
 *
 * cgroup v2 forbids processes in a cgroup whose children have controllers enabled ("no internal
 * processes"), and the namespace root holds init. systemd moves itself to init.scope and enables
 * controllers on its own. For runit, init moves to an `init` child first and every available
 * controller is enabled below the root, so nested runtimes can set CPU and memory limits.
 * (`docker exec` into such a container joins init's cgroup: runc falls back to it.)
 */
export function cgroupDelegationScript(init: InitSystem): string {
  const v2 = [
    'mount -o remount,bind,rw /sys/fs/cgroup',
    ...(init === 'runit'
      ? [
          'mkdir -p /sys/fs/cgroup/init',
          'for p in $(cat /sys/fs/cgroup/cgroup.procs); do echo "$p" > /sys/fs/cgroup/init/cgroup.procs; done',
          'for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control; done',
        ]
      : []),
  ];
  const v1 = ['for d in /sys/fs/cgroup/*/; do mount -o remount,bind,rw "$d"; done', netClsScript()];
  return `{ if [ -f /sys/fs/cgroup/cgroup.controllers ]; then ${v2.join('; ')}; else ${v1.join('; ')}; fi; } 2>/dev/null`;
}

/**
 * cgroup v1 only: the `net_cls` hierarchy at /sys/fs/cgroup/net_cls when the kernel has one but the
 * engine showed none (the host never mounted it). The bosh-agent with a nats:// mbus needs it for
 * its NATS firewall: it moves itself into the net_cls cgroup `/nats-api-access` (classid 0xb0540002)
 * and lets only that class reach the NATS port and monit, with `iptables -m cgroup` rules in the VM's
 * own network namespace. Without the hierarchy the agent cannot make that cgroup and exits.
 *
 * A VM (private cgroup namespace) may mount a hierarchy but not bind a controller to a new one: the
 * CPI's host operation `net-cls-hierarchy` does that first, in the initial cgroup namespace and a
 * throw-away mount namespace. Nothing is mounted on the host; the engine never sees the hierarchy.
 * The hierarchy is global: every VM that mounts it sees its root (a controller nobody mounted on the
 * host keeps every process in its root, which is then each VM's cgroup namespace root too), so the
 * agents of all VMs share one `/nats-api-access` group with the same classid. That is harmless: a
 * classid only matters to the rules of the network namespace the packet leaves, the VM's own. The
 * group (empty) and the CPI's `bosh-cpi` group stay until the host reboots. The mount uses the
 * subsystems the hierarchy was bound with (`net_cls,net_prio`, as systemd mounts them, with a link
 * for each name).
 */
function netClsScript(): string {
  return [
    `h=$(awk '$1=="net_cls" && $4==1 {print $2}' /proc/cgroups)`,
    'if [ -n "$h" ] && [ "$h" != 0 ] && [ ! -e /sys/fs/cgroup/net_cls ]; then',
    `o=$(awk -v h="$h" '$4==1 && $2==h {printf "%s%s", s, $1; s=","}' /proc/cgroups)`,
    'mount -o remount,bind,rw /sys/fs/cgroup',
    'mkdir -p "/sys/fs/cgroup/$o" && mount -t cgroup -o "$o" cgroup "/sys/fs/cgroup/$o"',
    'for s in $(echo "$o" | tr , " "); do [ "$s" = "$o" ] || ln -s "$o" "/sys/fs/cgroup/$s"; done',
    'mount -o remount,bind,ro /sys/fs/cgroup',
    'fi',
  ]
    .join('; ')
    .replace('then;', 'then');
}

/**
 * The VM's security options: the operator's, plus `apparmor=unconfined`. On hosts whose engine
 * confines containers with AppArmor (Debian and Ubuntu hosts) its `docker-default` profile denies
 * every mount, and a VM must mount: the start command (engine bind mounts, the cgroup hierarchy),
 * the agent (bind-mounting the persistent disk), nested runtimes. Engines on hosts without AppArmor
 * ignore the option (the helper container has always carried it), so it is given without asking
 * the engine's /info first, ~30 ms of every create_vm on Docker 20.10. An operator who names an
 * AppArmor profile (or runs privileged VMs, which the engine leaves unconfined) keeps that choice.
 */
export function securityOptions(operator: string[], privileged: boolean): string[] {
  const operatorChoseProfile = operator.some((o) => /^apparmor[=:]/.test(o));
  if (operatorChoseProfile || privileged) return operator;
  return [...operator, 'apparmor=unconfined'];
}
