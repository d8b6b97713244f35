import type { Overridable } from '../../config/config.ts';
import { dataDir } from '../../config/data-dir.ts';
import { cpiError } from '../../rpc/errors.ts';
import {
  arrayOf,
  bool,
  type Check,
  type Checked,
  CheckFailure,
  describe,
  object,
  optional,
  str,
} from '../../util/check.ts';
import { readTextFileSync } from '../../util/process-io.ts';
import { isNormalizedAbsolute } from './vm-policy.ts';

const ENDPOINT = /^(unix:\/\/\/.+|tcp:\/\/[^/\s]+:\d+|https?:\/\/[^/\s]+:\d+)$/;
const API_VERSION = /^1\.\d+$/;

const tlsCheck = object({
  ca: str({ nonEmpty: true }),
  certificate: str({ nonEmpty: true }),
  private_key: str({ nonEmpty: true }),
});

const CAPABILITY = /^[A-Za-z_]{1,40}$/;

/** An absolute path without "//", "." or ".." segments, so that "inside" is a prefix check. */
const hostPath = (): Check<string> => (v, path) => {
  if (typeof v !== 'string' || !isNormalizedAbsolute(v))
    throw new CheckFailure(path, 'a normalized absolute path', describe(v));
  return v;
};

/** A name operators give a Docker host; it becomes part of cloud IDs (`vm-…@<name>`), so no dots or slashes. */
export const HOST_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;

/** One entry of `docker.hosts`: an engine of its own, with its own TLS material and data directory. */
const hostEntryCheck = object({
  name: str({ pattern: HOST_NAME, patternName: 'a name of letters, digits, "-" and "_" (at most 63)' }),
  host: str({ pattern: ENDPOINT, patternName: 'unix:///path/docker.sock or tcp://host:port' }),
  tls: optional(tlsCheck),
  api_version: optional(str({ pattern: API_VERSION, patternName: 'an API version such as "1.41"' })),
  /** Defaults to `docker.data_dir`. */
  data_dir: optional(dataDir()),
});

export type HostEntry = Checked<typeof hostEntryCheck>;

export const dockerPropertiesCheck = object({
  host: optional(
    str({ pattern: ENDPOINT, patternName: 'unix:///path/docker.sock or tcp://host:port' }),
    'unix:///var/run/docker.sock',
  ),
  tls: optional(tlsCheck),
  api_version: optional(str({ pattern: API_VERSION, patternName: 'an API version such as "1.41"' })),
  /** Directory on the Docker host for disks, snapshots and mount points. */
  data_dir: optional(dataDir(), '/var/lib/bosh-docker-cpi'),
  /** Several engines (see hosts/); without it, `host` and `tls` name the one engine. */
  hosts: optional(arrayOf(hostEntryCheck)),
  start_containers_with_systemd: optional(bool(), false),
  /** Replaces the command that starts the stemcell's init. */
  start_command: optional(arrayOf(str())),
  cap_add: optional(arrayOf(str({ nonEmpty: true })), ['SYS_ADMIN', 'NET_ADMIN', 'SYS_PTRACE']),
  privileged: optional(bool(), false),
  security_opt: optional(arrayOf(str()), []),
  publish_host_ip: optional(str(), '0.0.0.0'),
  /** Network for `dynamic` networks whose cloud_properties name none. */
  default_network: optional(str({ nonEmpty: true }), 'bridge'),
  helper_image: optional(str({ nonEmpty: true }), 'bosh-cpi-helper:1'),
  /** Host paths (and what lies below them) that a manifest's cloud_properties.binds may name. */
  allowed_bind_sources: optional(arrayOf(hostPath()), []),
  /** Whether a manifest's cloud_properties.privileged: true may override privileged: false. */
  allow_privileged_vms: optional(bool(), false),
  /** Capabilities a manifest's cloud_properties.cap_add may add. */
  allowed_cap_add: optional(arrayOf(str({ pattern: CAPABILITY, patternName: 'a capability name' })), []),
  /** When set, the only Docker networks a manifest's network cloud_properties.name may name. */
  allowed_networks: optional(arrayOf(str({ nonEmpty: true }))),
  /** tcp:// or http(s):// engines without the tls section (an unauthenticated Engine API is root on its host). */
  allow_insecure_tcp: optional(bool(), false),
});

export type DockerProperties = Checked<typeof dockerPropertiesCheck>;

const ENDPOINT_KEYS = { host: true, tls: true, api_version: true } as const;

/** A cpi-config may point at other engines (endpoints, TLS), never change what the CPI does there. */
export const DOCKER_CONTEXT_OVERRIDABLE: Overridable = {
  ...ENDPOINT_KEYS,
  hosts: { items: { name: true, ...ENDPOINT_KEYS } },
};

export interface TlsMaterial {
  ca: string;
  cert: string;
  key: string;
}

/** TLS material may be inline PEM or a path to a PEM file. */
function pem(value: string, field: string): string {
  if (value.includes('-----BEGIN')) return value;
  try {
    return readTextFileSync(value);
  } catch (e) {
    throw cpiError(
      `Invalid config: ${field} is neither PEM nor a readable file (${(e as NodeJS.ErrnoException).code})`,
    );
  }
}

export function loadTls(
  props: { tls?: DockerProperties['tls'] },
  base = 'config.cloud.properties.docker.tls',
): TlsMaterial | undefined {
  if (!props.tls) return undefined;
  return {
    ca: pem(props.tls.ca, `${base}.ca`),
    cert: pem(props.tls.certificate, `${base}.certificate`),
    key: pem(props.tls.private_key, `${base}.private_key`),
  };
}

/** `hosts` replaces `host`/`tls`; names must be unique, since cloud IDs carry them. */
function checkHosts(raw: Record<string, unknown>, props: DockerProperties): void {
  const base = 'config.cloud.properties.docker';
  if (!props.hosts) return;
  if (props.hosts.length === 0) throw cpiError(`Invalid config: ${base}.hosts must name at least one host`);
  for (const key of ['host', 'tls'])
    if (raw[key] !== undefined)
      throw cpiError(`Invalid config: ${base}.${key} and ${base}.hosts exclude each other; use hosts only`);
  const seen = new Set<string>();
  props.hosts.forEach((h, i) => {
    if (seen.has(h.name))
      throw cpiError(`Invalid config: ${base}.hosts[${i}].name "${h.name}" is used by an earlier host`);
    seen.add(h.name);
  });
}

/** A TCP engine without client TLS is reached by whoever can reach the port: root on that host. */
export function isInsecureEndpoint(endpoint: string, tls: DockerProperties['tls']): boolean {
  return !endpoint.startsWith('unix://') && tls === undefined;
}

/** Remote engines need the tls section unless the operator opted in with allow_insecure_tcp. */
function checkTransport(props: DockerProperties): void {
  if (props.allow_insecure_tcp) return;
  const base = 'config.cloud.properties.docker';
  const endpoints = props.hosts
    ? props.hosts.map((h, i) => ({ key: `${base}.hosts[${i}]`, host: h.host, tls: h.tls }))
    : [{ key: base, host: props.host, tls: props.tls }];
  for (const e of endpoints)
    if (isInsecureEndpoint(e.host, e.tls))
      throw cpiError(
        `Invalid config: ${e.key}.host ${e.host} is a TCP engine without ${e.key}.tls; an unauthenticated Engine API is root on its host. Add the tls section, or set ${base}.allow_insecure_tcp: true to accept that`,
      );
}

export function parseDockerProperties(raw: unknown): DockerProperties {
  let props: DockerProperties;
  try {
    props = dockerPropertiesCheck(raw ?? {}, 'config.cloud.properties.docker');
  } catch (e) {
    if (e instanceof CheckFailure) throw cpiError(`Invalid config: ${e.message}`);
    throw e;
  }
  checkHosts((raw ?? {}) as Record<string, unknown>, props);
  checkTransport(props);
  return props;
}
