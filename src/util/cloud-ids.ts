import { type Check, str } from './check.ts';
import { randomUuid } from './random.ts';

declare const cidKind: unique symbol;

/**
 * A cloud ID of one kind: a string the compiler tells apart from any other string and from IDs
 * of other kinds. Only the functions in this file make one, each after a check, so code that
 * holds a `DiskCid` never re-checks that it is a non-empty ID of a disk.
 */
export type Cid<K extends string> = string & { readonly [cidKind]: K };

export type VmCid = Cid<'vm'>;
export type DiskCid = Cid<'disk'>;
export type SnapshotCid = Cid<'snap'>;
export type StemcellCid = Cid<'stemcell'>;
export type NetworkId = Cid<'net'>;

const branded = <K extends string>(value: string): Cid<K> => value as Cid<K>;

/**
 * A cloud ID as a request carries it: any non-empty string. No length cap or format: the
 * Director may hand over IDs of another CPI (cpi-config migrations), and for those
 * delete_vm/delete_disk must answer VMNotFound or DiskNotFound, which it tolerates, rather than
 * a CloudError that fails its task. Backends check an ID against their own format (`isId`)
 * before it reaches a path, a URL or a command.
 */
export function requestCid<K extends string>(_kind: K): Check<Cid<K>> {
  const nonEmpty = str({ nonEmpty: true });
  return (v, path) => branded<K>(nonEmpty(v, path));
}

/** A cloud ID found inside another argument (e.g. cloud_properties.snapshot_cid), by the same rule. */
export const optionalCid = <K extends string>(_kind: K, value: unknown): Cid<K> | undefined =>
  typeof value === 'string' && value !== '' ? branded<K>(value) : undefined;

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

/**
 * Cloud IDs made of a kind prefix and a UUID, and the strict check every ID from a request
 * passes before it reaches a path, an engine or a command line.
 */
export function cloudIds<K extends string>(kinds: readonly K[]) {
  const patterns = new Map(kinds.map((kind) => [kind, new RegExp(`^${kind}-${UUID}$`)]));
  return {
    newId: <T extends K>(kind: T): Cid<T> => branded<T>(`${kind}-${randomUuid()}`),
    isId: (kind: K, value: string): boolean => patterns.get(kind)?.test(value) ?? false,
    /** A string read back from the engine or the disk, as an ID of `kind` if it is one. */
    parseId: <T extends K>(kind: T, value: string): Cid<T> | undefined =>
      patterns.get(kind)?.test(value) ? branded<T>(value) : undefined,
  };
}

/** A cloud ID with a location suffix (`<id>@<where>`): still an ID of the same kind. */
export const qualifiedCid = <K extends string>(local: Cid<K>, separator: string, where: string): Cid<K> =>
  branded<K>(`${local}${separator}${where}`);
