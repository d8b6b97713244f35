import type { Backend } from '../../../cpi/backend.ts';
import { Logger } from '../../../log/logger.ts';
import { Redactor } from '../../../log/redact.ts';
import { type CpiFailure, cloudError } from '../../../rpc/errors.ts';
import type { Cid } from '../../../util/cloud-ids.ts';
import type { DockerProperties, TlsMaterial } from '../config.ts';
import type { DockerContext } from '../context.ts';

import { toCpiFailure } from '../failure.ts';
import type { IdKind } from '../ids.ts';
import { joinId, splitId } from './cloud-ids.ts';

/** The name the one engine of a single-host config (`docker.host`) goes by in logs and errors. */
export const DEFAULT_HOST_NAME = 'default';

export interface HostSpec {
  name: string;
  /** unix:///… or tcp://host:port */
  endpoint: string;
  tls: DockerProperties['tls'];
  /** Where the TLS settings are in the config, for error messages. */
  tlsPath: string;
  apiVersion: string | undefined;
  dataDir: string;
}

/** The hosts a config names: `docker.hosts`, or the single `docker.host` under the default name. */
export function hostSpecs(props: DockerProperties): { specs: HostSpec[]; qualifiedIds: boolean } {
  const base = 'config.cloud.properties.docker';
  if (!props.hosts) {
    return {
      qualifiedIds: false,
      specs: [
        {
          name: DEFAULT_HOST_NAME,
          endpoint: props.host,
          tls: props.tls,
          tlsPath: `${base}.tls`,
          apiVersion: props.api_version,
          dataDir: props.data_dir,
        },
      ],
    };
  }
  return {
    qualifiedIds: true,
    specs: props.hosts.map((h, i) => ({
      name: h.name,
      endpoint: h.host,
      tls: h.tls,
      tlsPath: `${base}.hosts[${i}].tls`,
      apiVersion: h.api_version ?? props.api_version,
      dataDir: h.data_dir ?? props.data_dir,
    })),
  };
}

/** Log lines of one host's work carry its name, so parallel work on several hosts stays readable. */
class HostLogger extends Logger {
  constructor(
    private readonly inner: Logger,
    private readonly prefix: string,
  ) {
    super('', new Redactor(), () => {});
  }
  override debug(message: string): void {
    this.inner.debug(this.prefix + message);
  }
  override info(message: string): void {
    this.inner.info(this.prefix + message);
  }
  override warn(message: string): void {
    this.inner.warn(this.prefix + message);
  }
  override error(message: string): void {
    this.inner.error(this.prefix + message);
  }
  override trace(message: string): void {
    this.inner.trace(this.prefix + message);
  }
  override text(): string {
    return this.inner.text();
  }
}

export interface HostParts {
  context: DockerContext;
  /** The single-host backend of this engine, in the IDs the engine knows. */
  backend: Backend;
}

/** Builds one host's context and backend; TLS files are read only when the host is first used. */
export type HostFactory = (spec: HostSpec, tls: TlsMaterial | undefined, logger: Logger) => HostParts;

/** One configured engine; nothing is connected or read until a call needs it. */
export class DockerHost {
  private parts: HostParts | undefined;

  constructor(
    readonly spec: HostSpec,
    private readonly build: () => HostParts,
  ) {}

  get name(): string {
    return this.spec.name;
  }

  /** `'zone-2' (tcp://10.0.0.9:2376)` */
  get label(): string {
    return `'${this.spec.name}' (${this.spec.endpoint})`;
  }

  private get built(): HostParts {
    this.parts ??= this.build();
    return this.parts;
  }

  get context(): DockerContext {
    return this.built.context;
  }

  get backend(): Backend {
    return this.built.backend;
  }

  close(): void {
    this.parts?.context.docker.close();
  }
}

const KIND_NAMES: Record<IdKind, string> = {
  vm: 'VM',
  disk: 'Disk',
  snap: 'Snapshot',
  stemcell: 'Stemcell',
  net: 'Network',
};

/** Where a cloud ID lives. `valid` is false for a malformed ID, which is handed to the first host unchanged. */
export interface Located<K extends IdKind> {
  host: DockerHost;
  local: Cid<K>;
  valid: boolean;
}

export class HostPool {
  readonly hosts: DockerHost[];

  constructor(
    specs: HostSpec[],
    /** IDs carry `@<host>` (a `hosts` config); a single-host config keeps its plain IDs. */
    readonly qualifiedIds: boolean,
    factory: HostFactory,
    loadTls: (spec: HostSpec) => TlsMaterial | undefined,
    readonly logger: Logger,
  ) {
    this.hosts = specs.map(
      (spec) =>
        new DockerHost(spec, () =>
          factory(spec, loadTls(spec), qualifiedIds ? new HostLogger(logger, `[${spec.name}] `) : logger),
        ),
    );
  }

  get first(): DockerHost {
    return this.hosts[0] as DockerHost;
  }

  get names(): string {
    return this.hosts.map((h) => h.name).join(', ');
  }

  named(name: string): DockerHost | undefined {
    return this.hosts.find((h) => h.name === name);
  }

  /** The host a cloud ID names; an ID naming a host the config does not list is an error. */
  locate<K extends IdKind>(kind: K, cid: Cid<K>): Located<K> {
    const split = splitId(kind, cid);
    if (!split) return { host: this.first, local: cid, valid: false };
    if (split.host === undefined) return { host: this.first, local: split.local, valid: true };
    const host = this.named(split.host);
    if (!host)
      throw cloudError(
        `${KIND_NAMES[kind]} '${cid}' is on Docker host '${split.host}', which is not in this CPI's config (hosts: ${this.names})`,
      );
    return { host, local: split.local, valid: true };
  }

  /** The cloud ID of something a host created. */
  cid<K extends IdKind>(host: DockerHost, local: Cid<K>): Cid<K> {
    return this.qualifiedIds ? joinId(local, host.name) : local;
  }

  /**
   * Runs one host's part of a call. Failures name the host (and its endpoint when it could not be
   * reached); failures about IDs speak of the cloud IDs the caller knows, not the host-local ones.
   */
  async on<T>(host: DockerHost, step: (host: DockerHost) => Promise<T>, ids: string[][] = []): Promise<T> {
    try {
      return await step(host);
    } catch (e) {
      throw this.failure(host, e, ids);
    }
  }

  /** A failure of one host's step, as the caller reads it (see ../failure.ts). */
  failure(host: DockerHost, e: unknown, ids: string[][] = []): CpiFailure {
    const callerIds = new Map<string, string>();
    for (const [local, full] of ids) if (local && full && local !== full) callerIds.set(local, full);
    return toCpiFailure(e, { label: host.label, name: host.name, named: this.qualifiedIds, callerIds });
  }

  close(): void {
    for (const host of this.hosts) host.close();
  }
}
