import type { AgentConfig, DiskHint, Networks, VmCid } from '../cpi/types.ts';

/** The settings document the BOSH agent reads (bosh-agent settings.Settings). */
export interface AgentSettings {
  agent_id: string;
  vm: { name: string; id: string };
  mbus: string;
  ntp: string[];
  blobstore?: { provider: string; options: Record<string, unknown> };
  networks: Record<string, Record<string, unknown>>;
  disks: {
    system: string;
    ephemeral: string | Record<string, string> | null;
    persistent: Record<string, DiskHint>;
    raw_ephemeral: null;
  };
  env: Record<string, unknown>;
}

export interface SettingsInput {
  agentId: string;
  vmCid: VmCid;
  agent: AgentConfig;
  networks: Networks;
  env: Record<string, unknown>;
  /** Containers get their addresses from the runtime: the agent must not touch interfaces. */
  preconfiguredNetworks: boolean;
  /** Per network name, the MAC of the NIC the backend created for it (agent matches NICs by it). */
  macs?: Record<string, string>;
  systemDisk?: string;
  ephemeralDisk?: DiskHint | null;
  persistentDisks?: Record<string, DiskHint>;
}

/** Every value of an object hint must be a string: the agent type-asserts without checking. */
export function normalizeHint(hint: DiskHint): DiskHint {
  if (typeof hint === 'string') return hint;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(hint)) out[k] = String(v);
  return out;
}

export function buildAgentSettings(input: SettingsInput): AgentSettings {
  const networks: AgentSettings['networks'] = {};
  for (const [name, spec] of Object.entries(input.networks)) {
    networks[name] = {
      ...spec,
      mac: input.macs?.[name] ?? '',
      // Explicit either way: false tells the agent to configure the NIC it finds by `mac`.
      preconfigured: input.preconfiguredNetworks,
    };
  }
  const persistent: Record<string, DiskHint> = {};
  for (const [cid, hint] of Object.entries(input.persistentDisks ?? {}))
    persistent[cid] = normalizeHint(hint);
  const ephemeral = input.ephemeralDisk ? normalizeHint(input.ephemeralDisk) : null;
  return {
    agent_id: input.agentId,
    vm: { name: input.vmCid, id: input.vmCid },
    mbus: input.agent.mbus,
    ntp: [...input.agent.ntp],
    ...(input.agent.blobstore ? { blobstore: input.agent.blobstore } : {}),
    networks,
    disks: { system: input.systemDisk ?? '', ephemeral, persistent, raw_ephemeral: null },
    env: input.env,
  };
}

export function withPersistentDisks(settings: AgentSettings, disks: Record<string, DiskHint>): AgentSettings {
  const persistent: Record<string, DiskHint> = {};
  for (const [cid, hint] of Object.entries(disks)) persistent[cid] = normalizeHint(hint);
  return { ...settings, disks: { ...settings.disks, persistent } };
}
