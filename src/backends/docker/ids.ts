import { randomUUID } from 'node:crypto';

/**
 * Cloud IDs of this backend: a kind prefix and a UUID. Anything else is rejected before it
 * reaches the engine or a path on the host, so `../../etc` or `$(reboot)` can never name a file.
 */
export type IdKind = 'vm' | 'disk' | 'snap' | 'stemcell' | 'net';

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const PATTERNS: Record<IdKind, RegExp> = {
  vm: new RegExp(`^vm-${UUID}$`),
  disk: new RegExp(`^disk-${UUID}$`),
  snap: new RegExp(`^snap-${UUID}$`),
  stemcell: new RegExp(`^stemcell-${UUID}$`),
  net: new RegExp(`^net-${UUID}$`),
};

export const newId = (kind: IdKind): string => `${kind}-${randomUUID()}`;
export const isId = (kind: IdKind, value: string): boolean => PATTERNS[kind].test(value);

/** Stemcell CIDs name an image repository of the same name. */
export const STEMCELL_REPO = 'bosh-stemcell';
export const stemcellImageRef = (cid: string) => `${STEMCELL_REPO}:${cid}`;
