import { cloudIds, type StemcellCid } from '../../util/cloud-ids.ts';

/**
 * Cloud IDs of this backend: a kind prefix and a UUID. Anything else is rejected before it
 * reaches the engine or a path on the host, so `../../etc` or `$(reboot)` can never name a file.
 */
const KINDS = ['vm', 'disk', 'snap', 'stemcell', 'net'] as const;
export type IdKind = (typeof KINDS)[number];

export const { newId, isId, parseId } = cloudIds<IdKind>(KINDS);

/** Stemcell CIDs name an image repository of the same name. */
export const STEMCELL_REPO = 'bosh-stemcell';
export const stemcellImageRef = (cid: StemcellCid) => `${STEMCELL_REPO}:${cid}`;
