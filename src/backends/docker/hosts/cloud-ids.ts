import { type Cid, qualifiedCid } from '../../../util/cloud-ids.ts';
import { HOST_NAME } from '../config.ts';
import { type IdKind, parseId } from '../ids.ts';

/**
 * With several Docker hosts every cloud ID names its host: `<id>@<host>`, e.g.
 * `vm-0b7e…@zone-2`. The part before `@` is the ID the host itself knows (container label, file
 * names under data_dir), exactly the single-host format, so nothing on a host changes. An ID
 * without `@` (created by a single-host config, before `hosts` existed) belongs to the first host.
 *
 * Both parts are checked against strict patterns before either is used: the local part becomes
 * a path on the host, the host part is only ever looked up among the configured names.
 */
export const HOST_SEPARATOR = '@';

export interface SplitId<K extends IdKind> {
  /** The ID as the host knows it. */
  local: Cid<K>;
  /** The host's name; undefined for an ID in the single-host format. */
  host: string | undefined;
}

/** Splits a cloud ID; undefined when it is not a well-formed ID of this kind. */
export function splitId<K extends IdKind>(kind: K, cid: Cid<K>): SplitId<K> | undefined {
  const at = cid.indexOf(HOST_SEPARATOR);
  const local = parseId(kind, at < 0 ? cid : cid.slice(0, at));
  const host = at < 0 ? undefined : cid.slice(at + 1);
  if (!local) return undefined;
  if (host !== undefined && !HOST_NAME.test(host)) return undefined;
  return { local, host };
}

export const joinId = <K extends IdKind>(local: Cid<K>, host: string): Cid<K> =>
  qualifiedCid(local, HOST_SEPARATOR, host);
