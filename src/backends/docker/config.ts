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

export const dockerPropertiesCheck = object({
  host: optional(
    str({ pattern: ENDPOINT, patternName: 'unix:///path/docker.sock or tcp://host:port' }),
    'unix:///var/run/docker.sock',
  ),
  tls: optional(tlsCheck),
  api_version: optional(str({ pattern: API_VERSION, patternName: 'an API version such as "1.41"' })),
  /** Directory on the Docker host for disks, snapshots and mount points. */
  data_dir: optional(
    str({ pattern: /^\/[^\0]*[^/]$/, patternName: 'an absolute path' }),
    '/var/lib/bosh-docker-cpi',
  ),
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

export function loadTls(props: DockerProperties): TlsMaterial | undefined {
  if (!props.tls) return undefined;
  const base = 'config.cloud.properties.docker.tls';
  return {
    ca: pem(props.tls.ca, `${base}.ca`),
    cert: pem(props.tls.certificate, `${base}.certificate`),
    key: pem(props.tls.private_key, `${base}.private_key`),
  };
}

export function parseDockerProperties(raw: unknown): DockerProperties {
  try {
    return dockerPropertiesCheck(raw ?? {}, 'config.cloud.properties.docker');
  } catch (e) {
    if (e instanceof CheckFailure) throw cpiError(`Invalid config: ${e.message}`);
    throw e;
  }
}
