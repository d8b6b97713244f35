import { readFileSync } from 'node:fs';
import { cpiError } from '../../rpc/errors.ts';
import { arrayOf, bool, type Checked, CheckFailure, object, optional, str } from '../../util/check.ts';

const ENDPOINT = /^(unix:\/\/\/.+|tcp:\/\/[^/\s]+:\d+|https?:\/\/[^/\s]+:\d+)$/;
const API_VERSION = /^1\.\d+$/;

const tlsCheck = object({
  ca: str({ nonEmpty: true }),
  certificate: str({ nonEmpty: true }),
  private_key: str({ nonEmpty: true }),
});

/** A name operators give a Docker host; it becomes part of cloud IDs (`vm-…@<name>`), so no dots or slashes. */
export const HOST_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?$/;
const DATA_DIR = { pattern: /^\/[^\0]*[^/]$/, patternName: 'an absolute path' };

/** One entry of `docker.hosts`: an engine of its own, with its own TLS material and data directory. */
const hostEntryCheck = object({
  name: str({ pattern: HOST_NAME, patternName: 'a name of letters, digits, "-" and "_" (at most 63)' }),
  host: str({ pattern: ENDPOINT, patternName: 'unix:///path/docker.sock or tcp://host:port' }),
  tls: optional(tlsCheck),
  api_version: optional(str({ pattern: API_VERSION, patternName: 'an API version such as "1.41"' })),
  /** Defaults to `docker.data_dir`. */
  data_dir: optional(str(DATA_DIR)),
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
  data_dir: optional(str(DATA_DIR), '/var/lib/bosh-docker-cpi'),
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
});

export type DockerProperties = Checked<typeof dockerPropertiesCheck>;

export interface TlsMaterial {
  ca: string;
  cert: string;
  key: string;
}

/** TLS material may be inline PEM or a path to a PEM file. */
function pem(value: string, field: string): string {
  if (value.includes('-----BEGIN')) return value;
  try {
    return readFileSync(value, 'utf8');
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

export function parseDockerProperties(raw: unknown): DockerProperties {
  let props: DockerProperties;
  try {
    props = dockerPropertiesCheck(raw ?? {}, 'config.cloud.properties.docker');
  } catch (e) {
    if (e instanceof CheckFailure) throw cpiError(`Invalid config: ${e.message}`);
    throw e;
  }
  checkHosts((raw ?? {}) as Record<string, unknown>, props);
  return props;
}
