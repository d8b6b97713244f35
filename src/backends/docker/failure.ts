import { asCpiFailure, CpiFailure, cloudError, ErrorType } from '../../rpc/errors.ts';
import { DockerApiError } from './engine/client.ts';
import { TransportError } from './engine/transport.ts';

/** Where on which engine a failure happened, as the caller should read it. */
export interface HostSite {
  /** `'zone-2' (tcp://10.0.0.9:2376)` */
  label: string;
  name: string;
  /** Several hosts are configured: messages say which one failed. */
  named: boolean;
  /** The caller's cloud ID of each host-local ID the step used. */
  callerIds: ReadonlyMap<string, string>;
}

const HOST_NAMED_TYPES = new Set<string>([
  ErrorType.CloudError,
  ErrorType.VMCreationFailed,
  ErrorType.NoDiskSpace,
]);

/**
 * The Docker backend's one error boundary: engine, transport and host-script failures become the
 * CpiFailure the caller receives. Causes are wrapped, never edited: a failure on one of several
 * hosts says which host around the original message, and a failure about cloud IDs is issued
 * again for the IDs the caller used (see CpiFailure.withIds).
 */
export function toCpiFailure(e: unknown, site?: HostSite): CpiFailure {
  if (e instanceof TransportError)
    return site
      ? cloudError(`Docker host ${site.label} is unreachable: ${e.message}`, true, e)
      : cloudError(`Docker host ${e.endpoint}: ${e.message}`, true, e);
  if (e instanceof DockerApiError) return cloudError(onHost(site, e.message), e.status >= 500, e);
  if (!(e instanceof CpiFailure)) return asCpiFailure(e);
  if (!site) return e;
  if (e.about) {
    const ids = e.about.ids.map((id) => site.callerIds.get(id) ?? id);
    return ids.some((id, i) => id !== e.about?.ids[i]) ? e.withIds(ids) : e;
  }
  const message = HOST_NAMED_TYPES.has(e.type) ? onHost(site, e.message) : e.message;
  return message === e.message ? e : new CpiFailure(e.type, message, e.okToRetry, { cause: e });
}

function onHost(site: HostSite | undefined, message: string): string {
  if (!site?.named || message.includes(`'${site.name}'`)) return message;
  return `Docker host ${site.label}: ${message}`;
}
