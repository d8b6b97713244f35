import { isDeepStrictEqual } from 'node:util';
import { ensure, ensureEqual, sameSet, short } from '../../lib/assert.ts';
import type { Suite } from '../../lib/env.ts';

/** A hint the agent can use: a non-empty string, or a non-empty object whose values are all strings. */
export function checkHint(hint: unknown, what: string): void {
  if (typeof hint === 'string') {
    ensure(hint !== '', `${what}: the hint is an empty string`);
    return;
  }
  ensure(
    hint !== null && typeof hint === 'object' && !Array.isArray(hint),
    `${what}: the hint ${short(hint)} is neither a string nor an object`,
  );
  const entries = Object.entries(hint as Record<string, unknown>);
  ensure(entries.length > 0, `${what}: the hint is an empty object`);
  for (const [k, v] of entries)
    ensure(
      typeof v === 'string',
      `${what}: hint value ${k} is ${short(v)}, not a string (the agent's unchecked type assertion crashes on it)`,
    );
}

/** The settings file against protocol.md §4.1 and what create_vm was given. */
export function checkSettingsShape(
  suite: Suite,
  file: { mode: string; settings: Record<string, unknown> },
  vm: { cid: string; agentId: string; networks: Record<string, unknown>; env: Record<string, unknown> },
): void {
  const s = file.settings;
  ensure(
    file.mode === '600',
    `the settings file has mode ${file.mode}, not 600 (it holds the mbus password)`,
  );
  ensureEqual(s.agent_id, vm.agentId, 'settings.agent_id');
  const vmSection = s.vm as Record<string, unknown> | undefined;
  ensure(
    vmSection && typeof vmSection.name === 'string' && vmSection.name !== '',
    'settings.vm.name is missing or not a string',
  );
  ensureEqual(vmSection?.name, vm.cid, 'settings.vm.name');
  const agent = (suite.config.cloud as { properties: { agent: { mbus: string } } }).properties.agent;
  ensureEqual(s.mbus, agent.mbus, 'settings.mbus (from the config)');
  ensure(
    Array.isArray(s.ntp) && s.ntp.every((x) => typeof x === 'string'),
    `settings.ntp is ${short(s.ntp)}, not a list of strings`,
  );
  const disks = s.disks as Record<string, unknown> | undefined;
  ensure(disks && typeof disks === 'object', 'settings.disks is missing');
  ensure(
    typeof disks.system === 'string',
    `settings.disks.system is ${short(disks.system)}, not a string (an object breaks the agent)`,
  );
  const persistent = disks.persistent;
  ensure(
    persistent !== null && typeof persistent === 'object' && !Array.isArray(persistent),
    'settings.disks.persistent is not an object',
  );
  for (const [cid, hint] of Object.entries(persistent as Record<string, unknown>))
    checkHint(hint, `settings.disks.persistent.${cid}`);
  if (disks.ephemeral !== undefined && disks.ephemeral !== null && typeof disks.ephemeral !== 'string')
    checkHint(disks.ephemeral, 'settings.disks.ephemeral');
  ensure(
    isDeepStrictEqual(s.env, vm.env),
    () => `settings.env is not create_vm's env verbatim: ${short(s.env, 500)} vs ${short(vm.env, 500)}`,
  );
  const nets = s.networks as Record<string, Record<string, unknown>> | undefined;
  ensure(nets && typeof nets === 'object', 'settings.networks is missing');
  ensure(
    sameSet(Object.keys(nets), Object.keys(vm.networks)),
    `settings.networks has ${Object.keys(nets).join(',')}, create_vm gave ${Object.keys(vm.networks).join(',')}`,
  );
  for (const [name, spec] of Object.entries(vm.networks as Record<string, Record<string, unknown>>)) {
    const got = nets[name] ?? {};
    ensureEqual(got.type, spec.type, `settings.networks.${name}.type`);
    if (spec.ip) ensureEqual(got.ip, spec.ip, `settings.networks.${name}.ip`);
    ensure(
      got.preconfigured === true,
      `settings.networks.${name}.preconfigured is ${short(got.preconfigured)}: in a container the agent must not touch interfaces`,
    );
  }
  if (s.blobstore !== undefined) {
    const b = s.blobstore as Record<string, unknown>;
    ensure(
      typeof b.provider === 'string' && typeof b.options === 'object',
      `settings.blobstore ${short(b)} lacks provider/options`,
    );
  }
}
