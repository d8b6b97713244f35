import { requestCid } from '../../src/util/cloud-ids.ts';

/** Cloud IDs as a request would carry them (tests hand them to backends directly). */
export const vmCid = (value: string) => requestCid('vm')(value, 'vm_cid');
export const diskCid = (value: string) => requestCid('disk')(value, 'disk_cid');
export const snapshotCid = (value: string) => requestCid('snap')(value, 'snapshot_cid');
export const stemcellCid = (value: string) => requestCid('stemcell')(value, 'stemcell_cid');
