import { type AgentSettings, buildAgentSettings } from '../../agent/settings.ts';
import { parseVmSizing, type VmSizing } from '../../cpi/cloud-properties.ts';
import type { CreatedVm, CreateVmInput, Metadata, Networks, VmCid } from '../../cpi/types.ts';
import { CpiFailure, cloudError, vmCreationFailed, vmNotFound } from '../../rpc/errors.ts';
import { parseIpv4 } from '../../util/ipv4.ts';
import { chooseInit, initContainerConfig, securityOptions } from './container-init.ts';
import type { DockerContext } from './context.ts';
import { DockerApiError } from './engine/client.ts';
import type { ContainerInspect, ContainerSummary } from './engine/types.ts';
import type { HostResult } from './helper.ts';
import { isId, newId, parseId, stemcellImageRef } from './ids.ts';
import { LABELS } from './labels.ts';
import {
  defaultGatewayNetwork,
  dnsServers,
  type NetworkAttachment,
  planNetworks,
  portBindings,
  reportNetworks,
} from './networking.ts';
import {
  MOUNT_POINT_IN_VM,
  readSettings,
  STAGED_SETTINGS_IN_VM,
  stagedSettingsParts,
  writeSettings,
} from './settings-file.ts';
import { startCommand } from './start-command.ts';
import { removeUnusedStemcellImage, removeUnusedStemcellImages } from './stemcells.ts';
import { capabilitiesFor, checkedBinds, checkedCapAdd, checkedPrivileged } from './vm-policy.ts';

const EPHEMERAL_MOUNT = '/var/vcap/data';
const ephemeralVolume = (vmCid: VmCid) => `${vmCid}-ephemeral`;

/** Finds a VM's container by its label (the container's name changes with set_vm_metadata). */
export async function findVm(ctx: DockerContext, vmCid: VmCid): Promise<ContainerSummary | undefined> {
  if (!isId('vm', vmCid)) return undefined;
  const [found] = await ctx.containers.list([`${LABELS.vm}=${vmCid}`]);
  return found;
}

export async function hasVm(ctx: DockerContext, vmCid: VmCid): Promise<boolean> {
  return (await findVm(ctx, vmCid)) !== undefined;
}

export async function requireVm(ctx: DockerContext, vmCid: VmCid): Promise<ContainerSummary> {
  const vm = await findVm(ctx, vmCid);
  if (!vm) throw vmNotFound(vmCid);
  return vm;
}

/** Docker takes CPUs in billionths; the parser keeps cpu ≥ 0.01, so this is never 0 (= no limit). */
function resourceLimits(sizing: VmSizing): Record<string, number> {
  const limits: Record<string, number> = {};
  if (sizing.cpu !== undefined) limits.NanoCpus = Math.round(sizing.cpu * 1e9);
  if (sizing.ramMiB !== undefined) limits.Memory = sizing.ramMiB * 1048576;
  return limits;
}

/** The engine's answer when a network named in a container spec no longer exists. */
const isNetworkGone = (e: unknown) =>
  e instanceof DockerApiError && e.status === 404 && /network/i.test(e.apiMessage);

/**
 * Worth a retry: engine-side failures, and a network that a concurrent delete_vm removed as unused
 * between planning and joining it (the retry creates it again).
 */
const isTransient = (e: unknown) =>
  !(e instanceof CpiFailure) &&
  !(e instanceof DockerApiError && e.status < 500 && !/network \S+ not found/i.test(e.apiMessage));

/**
 * A CPI-made network can vanish between planning and start when a concurrent delete_vm removed
 * it as unused; everything half-made was cleaned up, so one more attempt recreates it.
 */
export async function createVm(ctx: DockerContext, input: CreateVmInput): Promise<CreatedVm> {
  try {
    return await createVmOnce(ctx, input);
  } catch (e) {
    if (!(e instanceof CpiFailure && /network \S+ not found/i.test(e.message))) throw e;
    ctx.logger.warn('A network of the VM was removed by a concurrent delete_vm; creating the VM again');
    return createVmOnce(ctx, input);
  }
}

async function createVmOnce(ctx: DockerContext, input: CreateVmInput): Promise<CreatedVm> {
  ctx.host.prepare();
  const vmCid = newId('vm');
  const image = stemcellImageRef(input.stemcellCid);
  const props = input.cloudProperties;
  const sizing = parseVmSizing(props, { fractionalCpu: true });
  const ephemeralSize = sizing.ephemeralDiskMiB;
  const limits = resourceLimits(sizing);
  // What reaches outside the container needs the operator's allowlist (vm-policy.ts).
  const binds = checkedBinds(props, ctx.props);
  const privileged = checkedPrivileged(props, ctx.props);
  const extraCaps = checkedCapAdd(props, ctx.props);
  const ports = portBindings(props.ports, ctx.props.publish_host_ip);
  // The ephemeral volume needs nothing the lookups below answer: made meanwhile, removed if they fail.
  const volume =
    ephemeralSize === undefined
      ? ctx.volumes.create(ephemeralVolume(vmCid), {
          [LABELS.cpi]: 'docker',
          [LABELS.vm]: vmCid,
          [LABELS.director]: ctx.directorUuid,
        })
      : undefined;
  volume?.catch(() => {}); // awaited below
  // The agent's NATS firewall needs a net_cls hierarchy the VM can mount on cgroup v1 hosts
  // (container-init.ts); the host operation does nothing on cgroup v2. Meanwhile the container is made.
  const netCls = ctx.agent.mbus.startsWith('nats://') ? ctx.host.run('net-cls-hierarchy', []) : undefined;
  netCls?.catch(() => {}); // awaited before the start
  let init: ReturnType<typeof chooseInit>['init'];
  let reason: string;
  try {
    const stemcellImage = await ctx.images.inspect(image);
    if (!stemcellImage)
      throw vmCreationFailed(
        `Stemcell '${input.stemcellCid}' not found on Docker host ${ctx.docker.endpoint}`,
        false,
      );
    ({ init, reason } = chooseInit(ctx.props, stemcellImage.Config?.Labels));
  } catch (e) {
    if (volume) await volume.then(() => ctx.volumes.remove(ephemeralVolume(vmCid))).catch(() => {});
    throw e;
  }
  ctx.logger.info(`VM ${vmCid}: init ${init} (${reason})`);
  const initConfig = initContainerConfig(init);
  const settings = buildAgentSettings({
    agentId: input.agentId,
    vmCid,
    agent: ctx.agent,
    // A dynamic network's address is the engine's choice at start: its entry carries none, and
    // the agent takes the address of its default route, as with DHCP on other IaaSes.
    networks: input.networks,
    env: input.env,
    preconfiguredNetworks: true,
  });
  // Our own start command installs settings staged on the host (settings-file.ts), staged while the
  // engine creates the container; an operator's start_command gets them written into the container.
  // Staging starts once the networks passed the operator's policy: a refused VM changes nothing on
  // the host.
  let staging: Promise<void> | undefined;

  const created: { container?: string; volume?: boolean; hostStorage?: boolean } = {};
  try {
    let ephemeralBind: string;
    if (ephemeralSize !== undefined) {
      created.hostStorage = true;
      const res = await ctx.host.run('create-ephemeral', [vmCid, ephemeralSize]);
      if (res.outcome !== 'done')
        throw cloudError(`Creating the ${ephemeralSize} MiB ephemeral disk failed: ${res.stderr}`);
      ephemeralBind = `${ctx.props.data_dir}/ephemeral/${vmCid}:${EPHEMERAL_MOUNT}`;
    } else {
      created.volume = true; // made above; cleanup removes it even if its creation failed half-way
      await volume;
      ephemeralBind = `${ephemeralVolume(vmCid)}:${EPHEMERAL_MOUNT}`;
    }
    const labels = {
      [LABELS.cpi]: 'docker',
      [LABELS.vm]: vmCid,
      [LABELS.agentId]: input.agentId,
      [LABELS.director]: ctx.directorUuid,
      [LABELS.stemcell]: input.stemcellCid,
      [LABELS.createdAt]: new Date().toISOString(),
      [LABELS.init]: init,
    };
    const dns = dnsServers(input.networks);
    // A concurrent delete_vm may remove a CPI-managed network between planning and use (it was
    // unused at that instant): plan again and retry rather than fail the VM.
    let plan: NetworkAttachment[] = [];
    for (let attempt = 1; ; attempt++) {
      plan = await ctx.logger.timed('networks', () =>
        planNetworks(
          input.networks,
          ctx.networks,
          ctx.props.default_network,
          ctx.directorUuid,
          ctx.props.allowed_networks,
        ),
      );
      const hostNetwork = plan.some((p) => p.hostNetwork);
      if (hostNetwork && plan.length > 1)
        throw vmCreationFailed(
          "A VM on the engine's host network can have no other network (it shares the host's)",
          false,
        );
      if (!staging && ctx.props.start_command === undefined) {
        staging = stageSettings(ctx, vmCid, settings);
        staging.catch(() => {}); // awaited before the start, or before a cleanup
      }
      const first = plan.find((p) => p.isDefaultGateway) ?? plan[0];
      try {
        created.container = await ctx.containers.create(vmCid, {
          Image: image,
          Hostname: input.agentId.slice(0, 63),
          Entrypoint: startCommand({ startCommand: ctx.props.start_command, init }),
          Cmd: [],
          ...initConfig.config,
          Labels: labels,
          ExposedPorts: ports.exposed,
          HostConfig: {
            Binds: [
              `${ctx.props.data_dir}/mounts/${vmCid}:${MOUNT_POINT_IN_VM}:rslave`,
              ephemeralBind,
              ...(staging ? [`${ctx.props.data_dir}/settings/${vmCid}:${STAGED_SETTINGS_IN_VM}:ro`] : []),
              ...binds,
            ],
            Privileged: privileged,
            CapAdd: privileged ? [] : capabilitiesFor([...ctx.props.cap_add, ...extraCaps], hostNetwork),
            SecurityOpt: securityOptions(ctx.props.security_opt, privileged),
            RestartPolicy: { Name: 'unless-stopped' },
            PortBindings: ports.bindings,
            ...(dns.length && !hostNetwork ? { Dns: dns } : {}),
            NetworkMode: first?.dockerName ?? 'none',
            ...limits,
            ...initConfig.hostConfig,
          },
          NetworkingConfig: first ? { EndpointsConfig: { [first.dockerName]: first.endpoint } } : {},
        });
        for (const attachment of plan) {
          if (attachment !== first)
            await ctx.networks.connect(attachment.dockerName, created.container, attachment.endpoint);
        }
        break;
      } catch (e) {
        if (attempt >= 6 || !isNetworkGone(e)) throw e;
        ctx.logger.warn(
          `A network of VM ${vmCid} vanished during its creation (attempt ${attempt}); retrying`,
        );
        if (created.container) await ctx.containers.remove(created.container, { force: true });
        created.container = undefined;
      }
    }
    const container = created.container as string;

    // Settings are in place before the container's init starts, so the agent finds them on its first try.
    if (staging) await staging;
    else await writeSettings(ctx.containers, container, vmCid, settings);
    const netClsResult = await netCls;
    if (netClsResult && netClsResult.outcome !== 'done')
      ctx.logger.warn(
        `No net_cls hierarchy for VM ${vmCid}; its agent's NATS firewall will fail: ${netClsResult.stderr}`,
      );
    await startContainer(ctx, container);
    const started = await ctx.containers.inspect(container);
    // Before any later settings write: an archive request while the root is still shared can leave
    // its binds in the VM.
    if (staging) await settingsInstalled(ctx, started, vmCid);
    else await isolateStartedRoot(ctx, started, vmCid);
    const networks = Object.values(input.networks).some((n) => n.type === 'dynamic')
      ? reportNetworks(input.networks, plan, started?.NetworkSettings.Networks ?? {})
      : input.networks;
    await applyDefaultRoute(ctx, container, networks);
    ctx.logger.info(
      `Created VM ${vmCid} (container ${container.slice(0, 12)}) from stemcell ${input.stemcellCid}`,
    );
    return { vmCid, networks };
  } catch (e) {
    // Its files are removed with the VM's storage: not before they are written.
    await staging?.catch(() => {});
    await cleanupFailedVm(ctx, vmCid, created, e);
    if (e instanceof CpiFailure && e.type === 'Bosh::Clouds::VMCreationFailed') throw e;
    const message = e instanceof Error ? e.message : String(e);
    throw vmCreationFailed(
      `Creating VM for agent '${input.agentId}' on Docker host ${ctx.docker.endpoint} failed: ${message}`,
      isTransient(e),
    );
  }
}

/** Stages the new VM's settings on the host, every part at once (settings-file.ts). */
async function stageSettings(ctx: DockerContext, vmCid: VmCid, settings: AgentSettings): Promise<void> {
  const parts = stagedSettingsParts(settings);
  const results = await Promise.all(
    parts.map((data, i) => ctx.host.run('stage-settings', [vmCid, i + 1, parts.length, data])),
  );
  const failed = results.find((r) => r.outcome !== 'done');
  if (failed)
    throw cloudError(
      `Staging the agent settings of VM '${vmCid}' on the Docker host failed: ${failed.stderr || `exit ${failed.exitCode}`}`,
    );
  if (!results.some((r) => r.lines.some(([key]) => key === 'installed')))
    throw cloudError(
      `Staging the agent settings of VM '${vmCid}' on the Docker host failed: no part installed them`,
    );
}

/**
 * create_vm's isolateStartedRoot for a VM whose start command installs staged settings: also waits
 * until they are installed in its root filesystem, where every later call reads and writes them.
 * A container that is not running any more installs them on its next start.
 */
async function settingsInstalled(
  ctx: DockerContext,
  inspected: ContainerInspect | undefined,
  vmCid: VmCid,
): Promise<void> {
  if (!inspected?.State.Running) return;
  const res = await ctx.host.run('vm-started', [vmCid, inspected.State.Pid]);
  if (res.outcome !== 'done')
    throw cloudError(`VM '${vmCid}' did not get its agent settings: ${res.stderr || `exit ${res.exitCode}`}`);
  if (res.stderr)
    ctx.logger.warn(`Making the root filesystem of VM ${vmCid} private on the host failed: ${res.stderr}`);
}

/**
 * Makes the host's mount of a running container's root filesystem private (isolate_vm_root in
 * host-script.ts): without it every archive request (the settings file) made while a disk is mounted
 * stacks another /warden-cpi-dev, with a copy of each disk, inside the VM. Needed after each start of
 * the container; attach and detach repeat it for restarts the CPI did not make (engine restarts).
 */
export async function isolateVmRoot(ctx: DockerContext, containerId: string, vmCid: string): Promise<void> {
  await isolateStartedRoot(ctx, await ctx.containers.inspect(containerId), vmCid);
}

async function isolateStartedRoot(
  ctx: DockerContext,
  inspected: ContainerInspect | undefined,
  vmCid: string,
): Promise<void> {
  if (!inspected?.State.Running) return;
  const res = await ctx.host.run('isolate-vm-root', [inspected.State.Pid]);
  if (res.exitCode !== 0 || res.stderr)
    ctx.logger.warn(`Making the root filesystem of VM ${vmCid} private on the host failed: ${res.stderr}`);
}

const isUnsharedMountError = (e: unknown) =>
  e instanceof DockerApiError && /shared or slave mount|no such file or directory/i.test(e.apiMessage);

async function prepareDataDir(ctx: DockerContext): Promise<void> {
  ctx.logger.info(
    `Preparing the data directory ${ctx.props.data_dir} on the Docker host (first VM there, or the host restarted)`,
  );
  const res = await ctx.host.run('setup', []);
  if (res.outcome !== 'done')
    throw cloudError(`Preparing ${ctx.props.data_dir} on the Docker host failed: ${res.stderr}`);
}

/** Starts the container; on the first use of a data dir (or after a host reboot) mounts/ is not shared yet. */
export async function startContainer(ctx: DockerContext, containerId: string): Promise<void> {
  try {
    await ctx.containers.start(containerId);
  } catch (e) {
    if (!isUnsharedMountError(e)) throw e;
    await prepareDataDir(ctx);
    await ctx.containers.start(containerId);
  }
}

async function cleanupFailedVm(
  ctx: DockerContext,
  vmCid: VmCid,
  created: { container?: string; volume?: boolean; hostStorage?: boolean },
  cause: unknown,
): Promise<void> {
  ctx.logger.warn(
    `Creating VM ${vmCid} failed (${cause instanceof Error ? cause.message : String(cause)}); removing what was created`,
  );
  const attempts: Array<Promise<unknown>> = [];
  try {
    if (created.container) await ctx.containers.remove(created.container, { force: true });
    if (created.volume) attempts.push(ctx.volumes.remove(ephemeralVolume(vmCid)));
    attempts.push(ctx.host.run('delete-vm-storage', [vmCid, undefined]));
    await Promise.all(attempts);
    // A network this create_vm made for its manual subnet, which no VM uses now.
    await removeUnusedNetworks(ctx);
  } catch (e) {
    ctx.logger.error(`Cleanup of VM ${vmCid} incomplete: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * Removes the container and its ephemeral storage. Persistent disks mounted for it are
 * unmounted, never deleted. When the container is already gone, whatever it left is still swept.
 */
export async function deleteVm(ctx: DockerContext, vmCid: VmCid): Promise<void> {
  if (!isId('vm', vmCid)) throw vmNotFound(vmCid);
  ctx.host.prepare();
  const vm = await findVm(ctx, vmCid);
  // A running VM's storage is released on the host as soon as its processes are gone (the host
  // operation waits for its mount namespace to go), while the engine finishes removing the
  // container; otherwise (stopped, restarting, gone) once the container is removed.
  let releasing: Promise<HostResult<'delete-vm-storage'> | undefined> = Promise.resolve(undefined);
  if (vm) {
    if (vm.State === 'running')
      releasing = ctx.containers
        .inspect(vm.Id)
        .catch(() => undefined)
        .then((inspected) =>
          inspected?.State.Running && inspected.State.Status === 'running' && inspected.State.Pid > 0
            ? ctx.host.run('delete-vm-storage', [vmCid, inspected.State.Pid])
            : undefined,
        );
    releasing.catch(() => {}); // awaited once the container is removed
    // systemd halts on the stop signal (SIGRTMIN+3), within the engine's stop timeout.
    if (vm.Labels[LABELS.init] === 'systemd' && vm.State === 'running') await ctx.containers.stop(vm.Id);
    await ctx.containers.remove(vm.Id, { force: true });
    ctx.logger.info(`Removed container ${vm.Id.slice(0, 12)} of VM ${vmCid}`);
  }
  // Networks and images are swept on every call, also on a retry whose container is already gone,
  // while the host releases the VM's storage; the ephemeral volume is free now.
  const sweep = Promise.all([
    removeUnusedNetworks(ctx),
    vm ? removeUnusedStemcellImage(ctx, vm.ImageID) : removeUnusedStemcellImages(ctx),
    ctx.volumes.remove(ephemeralVolume(vmCid)),
  ]);
  sweep.catch(() => {}); // awaited below
  const storage = await releasing
    .then((early) => early ?? ctx.host.run('delete-vm-storage', [vmCid, undefined]))
    .catch(async (e: unknown) => {
      await sweep.catch(() => {});
      throw e;
    });
  if (storage.outcome !== 'done') {
    await sweep.catch((e) =>
      ctx.logger.warn(`Sweeping unused networks and images failed: ${e instanceof Error ? e.message : e}`),
    );
    throw cloudError(
      `Releasing the storage of VM '${vmCid}' failed: ${storage.stderr || `the host operation exited with ${storage.exitCode}`}`,
      true,
    );
  }
  await sweep;
  if (!vm) throw vmNotFound(vmCid);
}

/**
 * CPI-created networks go when no container uses them any more. A container that is created but
 * not yet started holds no endpoint, so the containers' own network settings are checked too; a
 * create_vm that planned an older network just before it went retries (see createVm).
 */
async function removeUnusedNetworks(ctx: DockerContext): Promise<void> {
  // Each director removes only the networks it made: another director's create_vm never loses one.
  const managed = await ctx.networks.list([
    `${LABELS.network}=managed`,
    `${LABELS.director}=${ctx.directorUuid}`,
  ]);
  if (managed.length === 0) return;
  const referenced = new Set<string>();
  for (const c of await ctx.containers.list([])) {
    if (c.HostConfig?.NetworkMode) referenced.add(c.HostConfig.NetworkMode);
    for (const [name, endpoint] of Object.entries(c.NetworkSettings?.Networks ?? {})) {
      referenced.add(name);
      if (endpoint.NetworkID) referenced.add(endpoint.NetworkID);
    }
  }
  for (const network of managed) {
    if (referenced.has(network.Name) || referenced.has(network.Id)) continue;
    const inspected = await ctx.networks.inspect(network.Id);
    if (!inspected || Object.keys(inspected.Containers ?? {}).length > 0) continue;
    const outcome = await ctx.networks.remove(network.Id);
    if (outcome === 'removed') ctx.logger.info(`Removed unused network ${network.Name}`);
  }
}

/**
 * With several networks the engine puts the default route on the first network by name; BOSH
 * wants it on the network whose `default` includes "gateway". The route is set inside the
 * container's network namespace from the host, so the stemcell needs no tools for it.
 */
async function applyDefaultRoute(ctx: DockerContext, containerId: string, networks: Networks): Promise<void> {
  if (Object.values(networks).filter((n) => n.type !== 'vip').length < 2) return;
  const name = defaultGatewayNetwork(networks);
  const gateway = name ? networks[name]?.gateway : undefined;
  if (!gateway || parseIpv4(gateway) === undefined) return;
  const inspected = await ctx.containers.inspect(containerId);
  if (!inspected?.State.Running) return;
  const res = await ctx.host.run('set-default-route', [inspected.State.Pid, gateway]);
  if (res.outcome !== 'done')
    throw cloudError(`Setting the default route via ${gateway} (network '${name}') failed: ${res.stderr}`);
  ctx.logger.info(`Default route via ${gateway} on network '${name}'`);
}

/**
 * Restarts the container. Every disk its settings name is mounted first (after a host reboot the
 * loop mounts are gone, and the container's start command waits for them), so the VM comes back
 * with its disks or the call fails.
 */
export async function rebootVm(ctx: DockerContext, vmCid: VmCid): Promise<void> {
  const vm = await requireVm(ctx, vmCid);
  const settings = await readSettings(ctx.containers, vm.Id);
  const named = Object.keys(settings?.disks?.persistent ?? {}).sort();
  const mounted = await mountDisksForVm(ctx, vmCid, named);
  await ctx.containers.restart(vm.Id, 30).catch(async (e) => {
    if (!isUnsharedMountError(e)) throw e;
    await prepareDataDir(ctx);
    await ctx.containers.start(vm.Id);
  });
  // The engine mounted the container's root filesystem anew, with the disks mounted under it.
  await isolateVmRoot(ctx, vm.Id, vmCid);
  if (settings) await applyDefaultRoute(ctx, vm.Id, settings.networks as Networks);
  ctx.logger.info(
    `Restarted VM ${vmCid}${named.length ? `; persistent disks mounted: ${mounted.join(', ')}` : ''}`,
  );
}

/**
 * Mounts each named disk for the VM (nothing to do for one already mounted) and returns the disks
 * mounted for it. A disk that cannot be mounted fails the call, naming it.
 */
export async function mountDisksForVm(
  ctx: DockerContext,
  vmCid: VmCid,
  diskCids: string[],
): Promise<string[]> {
  const disksIn = (res: { lines: Array<[string, string]> }) =>
    res.lines.filter(([k]) => k === 'disk').map(([, v]) => v);
  const listed = await ctx.host.run('list-disks', [vmCid]);
  if (listed.outcome !== 'done')
    throw cloudError(`Listing the disks of VM '${vmCid}' failed: ${listed.stderr}`, true);
  let mounted = disksIn(listed);
  for (const name of diskCids) {
    if (mounted.includes(name)) continue;
    const disk = parseId('disk', name);
    if (!disk)
      throw cloudError(`The settings of VM '${vmCid}' name '${name}', which is not a disk of this CPI`);
    const attach = await ctx.host.run('attach-disk', [vmCid, disk, 0]);
    if (attach.outcome !== 'done')
      throw cloudError(
        `Mounting persistent disk '${disk}' for VM '${vmCid}' failed (${attach.stderr || `exit ${attach.exitCode}`}); the VM is not started without it`,
        true,
      );
    mounted = disksIn(attach);
    ctx.logger.info(`Mounted persistent disk ${disk} for VM ${vmCid} again`);
  }
  return mounted;
}

const sanitize = (s: string) => s.replace(/[^a-zA-Z0-9_.-]+/g, '-').replace(/^[^a-zA-Z0-9]+/, '');

/**
 * Operators see the metadata in `docker ps`: the container's name. Writing the metadata into the
 * VM as well would cost an archive request (~50-100 ms) for nothing the agent or the Director reads.
 * A VM keeps its CID as its name until its first set_vm_metadata (the usual, and only, call after
 * create_vm): then one rename by that name does it; later calls find the container by its label.
 */
export async function setVmMetadata(ctx: DockerContext, vmCid: VmCid, metadata: Metadata): Promise<void> {
  const group =
    metadata.instance_group ?? metadata.job ?? (metadata.name ? metadata.name.split('/')[0] : undefined);
  const parts = [metadata.deployment, group, metadata.index].filter((p): p is string => !!p).map(sanitize);
  const name = [...parts.filter(Boolean), vmCid]
    .join('_')
    .slice(-200)
    .replace(/^[^a-zA-Z0-9]+/, '');
  if (isId('vm', vmCid) && name !== vmCid && (await ctx.containers.rename(vmCid, name))) return;
  const vm = await requireVm(ctx, vmCid);
  if (vm.Names[0] !== `/${name}` && !(await ctx.containers.rename(vm.Id, name))) throw vmNotFound(vmCid);
}

export type { NetworkAttachment };
