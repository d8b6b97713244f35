/**
 * What a deployment manifest may ask of a Docker host through cloud_properties. The operator owns
 * the CPI config; manifests are written by many teams, so anything that reaches outside the
 * container (host paths, privilege, the host's network namespace, capabilities) needs an
 * operator's allowlist entry. A refusal names the property and the config key that would allow it.
 */

import { pathsOverlap } from '../../config/data-dir.ts';
import type { CloudProperties } from '../../cpi/types.ts';
import { vmCreationFailed } from '../../rpc/errors.ts';

const KEY = 'config.cloud.properties.docker';

export interface VmPolicy {
  data_dir: string;
  privileged: boolean;
  allow_privileged_vms: boolean;
  allowed_bind_sources: string[];
  allowed_cap_add: string[];
  allowed_networks?: string[] | undefined;
}

const refuse = (message: string) => vmCreationFailed(message, false);

/** Absolute, and no "//", "." or ".." segments (so a prefix check means "inside"). */
export function isNormalizedAbsolute(path: string): boolean {
  if (!path.startsWith('/')) return false;
  if (path === '/') return true;
  return !path.split('/').some((s, i) => i > 0 && (s === '' || s === '.' || s === '..'));
}

const BIND = /^([^:\0]+):([^:\0]+)(?::(ro|rw))?$/;

/**
 * `cloud_properties.binds`: ["/host/path:/vm/path[:ro|:rw]"]. A source must lie in (or be) one of
 * `docker.allowed_bind_sources` (none by default), and never overlap data_dir, which holds every
 * VM's disks — no config key allows that.
 */
export function checkedBinds(props: CloudProperties, policy: VmPolicy): string[] {
  const binds = props.binds;
  if (binds === undefined) return [];
  const format = 'cloud_properties.binds must be a list of "/host/path:/vm/path[:ro|:rw]"';
  if (!Array.isArray(binds)) throw refuse(format);
  return binds.map((bind: unknown) => {
    const m = typeof bind === 'string' ? BIND.exec(bind) : null;
    const source = m?.[1];
    const target = m?.[2];
    if (!m || !source || !target || !isNormalizedAbsolute(source) || !isNormalizedAbsolute(target))
      throw refuse(`${format} (normalized absolute paths), got ${JSON.stringify(bind)}`);
    if (pathsOverlap(source, policy.data_dir))
      throw refuse(
        `cloud_properties.binds: host path '${source}' overlaps the CPI's data directory ${policy.data_dir} (every VM's disks); no config key allows that`,
      );
    const allowed = policy.allowed_bind_sources.some(
      (root) => root === '/' || source === root || source.startsWith(`${root}/`),
    );
    if (!allowed)
      throw refuse(
        `cloud_properties.binds: host path '${source}' is not allowed; an operator may allow it by listing it (or a directory above it) in ${KEY}.allowed_bind_sources`,
      );
    return bind as string;
  });
}

/**
 * `cloud_properties.privileged`: false always works (less privilege); true only where the
 * operator's `privileged` is true already, or `allow_privileged_vms` lets manifests ask for it.
 */
export function checkedPrivileged(props: CloudProperties, policy: VmPolicy): boolean {
  const asked = props.privileged;
  if (asked === undefined) return policy.privileged;
  if (typeof asked !== 'boolean') throw refuse('cloud_properties.privileged must be a boolean');
  if (asked && !policy.privileged && !policy.allow_privileged_vms)
    throw refuse(
      `cloud_properties.privileged: true is not allowed; an operator may allow it with ${KEY}.allow_privileged_vms: true`,
    );
  return asked;
}

const capability = (name: string) => name.toUpperCase().replace(/^CAP_/, '');

/** `cloud_properties.cap_add`: capabilities beyond the operator's `cap_add`, each in `allowed_cap_add`. */
export function checkedCapAdd(props: CloudProperties, policy: VmPolicy): string[] {
  const asked = props.cap_add;
  if (asked === undefined) return [];
  if (!Array.isArray(asked) || !asked.every((c) => typeof c === 'string' && /^[A-Za-z_]{1,40}$/.test(c)))
    throw refuse('cloud_properties.cap_add must be a list of capability names such as ["SYS_TIME"]');
  const allowed = new Set(policy.allowed_cap_add.map(capability));
  return (asked as string[]).map((c) => {
    const name = capability(c);
    if (name === 'ALL' || !allowed.has(name))
      throw refuse(
        `cloud_properties.cap_add: capability ${name} is not allowed; an operator may allow it by listing it in ${KEY}.allowed_cap_add`,
      );
    return name;
  });
}

/** The engine's own networks that reach outside a container's network namespace. */
const HOST_DRIVERS = new Set(['host', 'null']);

/**
 * A network named by a manifest (`cloud_properties.name`): with `allowed_networks` only those,
 * otherwise any except the engine's `host` and `none` networks. The operator's own
 * default_network is always allowed.
 */
export function checkNetworkAllowed(
  boshName: string,
  dockerName: string,
  driver: string,
  policy: Pick<VmPolicy, 'allowed_networks'> & { default_network: string },
): void {
  if (dockerName === policy.default_network) return;
  if (policy.allowed_networks) {
    if (!policy.allowed_networks.includes(dockerName))
      throw refuse(
        `Network '${boshName}': cloud_properties.name '${dockerName}' is not allowed; an operator may allow it by listing it in ${KEY}.allowed_networks`,
      );
    return;
  }
  if (HOST_DRIVERS.has(driver) || dockerName === 'host' || dockerName === 'none')
    throw refuse(
      `Network '${boshName}': cloud_properties.name '${dockerName}' (driver ${driver}) is not allowed: it is the engine's own network; an operator may allow it by listing it in ${KEY}.allowed_networks`,
    );
}

/** In the host's network namespace NET_ADMIN would let a VM reconfigure the host's network. */
export function capabilitiesFor(capAdd: string[], hostNetwork: boolean): string[] {
  return hostNetwork ? capAdd.filter((c) => capability(c) !== 'NET_ADMIN') : capAdd;
}
