import type { DiskCid, SnapshotCid, VmCid } from '../../cpi/types.ts';

/**
 * The operations the host script (host-script.ts) performs on the Docker host: for each, its
 * arguments in order and the outcomes besides success it may report. The script's dispatcher
 * (argument names, count check) and the TypeScript callers' types are both made from this table,
 * and the exit codes below are the only place the numbers live.
 */
export const HOST_EXIT_CODES = {
  notFound: 3,
  inUseElsewhere: 4,
  notAttached: 5,
  busy: 6,
  smallerSize: 7,
  noSpace: 8,
  /** Released by the VM's agent but still mounted elsewhere in the VM (`leftover <mount point>` lines). */
  leftInVm: 9,
  /** The record changed since it was read (set-disk-metadata replaces only what it read). */
  changed: 10,
} as const;

export type HostOutcomeName = keyof typeof HOST_EXIT_CODES;

/** One positional argument: its shell variable name, and how a value is written on the command line. */
export interface HostArg<T> {
  name: string;
  optional: boolean;
  encode(value: unknown): string;
  /** Only for the compiler: the type callers pass. */
  readonly type?: T;
}

const arg = <T>(name: string, encode: (value: unknown) => string = String): HostArg<T> => ({
  name,
  optional: false,
  encode,
});
const vmCid = (name = 'vm') => arg<VmCid>(name);
const diskCid = (name = 'cid') => arg<DiskCid>(name);
const snapshotCid = (name = 'snap') => arg<SnapshotCid>(name);
const whole = (name: string) => arg<number>(name);
const text = (name: string) => arg<string>(name);
const json = (name: string) => arg<unknown>(name, (v) => JSON.stringify(v));
/** Left empty on the command line when absent; the script reads it as "". */
const optional = <T>(a: HostArg<T>): HostArg<T | undefined> => ({
  name: a.name,
  optional: true,
  encode: (v) => (v === undefined ? '' : a.encode(v)),
});

interface HostOperation {
  args: readonly HostArg<unknown>[];
  outcomes: readonly HostOutcomeName[];
}

const operation = <const A extends readonly HostArg<unknown>[], const O extends readonly HostOutcomeName[]>(
  args: A,
  outcomes: O,
) => ({ args, outcomes }) satisfies HostOperation;

export const HOST_OPERATIONS = {
  setup: operation([], []),
  /** Mounts every recorded disk that is not mounted (after a host reboot); run by the helper at engine start. */
  restore: operation([], []),
  'create-disk': operation(
    [diskCid(), whole('size'), json('meta'), optional(snapshotCid('src'))],
    ['notFound', 'inUseElsewhere', 'noSpace'],
  ),
  'has-disk': operation([diskCid()], ['notFound']),
  'delete-disk': operation([diskCid()], ['notFound', 'inUseElsewhere', 'busy']),
  /** Says `metadata <the record, base64>`. */
  'read-disk-metadata': operation([diskCid()], ['notFound']),
  'set-disk-metadata': operation([diskCid(), text('expected'), json('meta')], ['notFound', 'changed']),
  'attach-disk': operation([vmCid(), diskCid(), whole('pid')], ['notFound', 'inUseElsewhere', 'busy']),
  'detach-disk': operation(
    [vmCid(), diskCid(), whole('pid'), whole('wait_s')],
    ['notFound', 'notAttached', 'busy', 'leftInVm'],
  ),
  'release-disk': operation([vmCid(), diskCid()], []),
  'list-disks': operation([vmCid()], []),
  'create-ephemeral': operation([vmCid(), whole('size')], ['noSpace']),
  /**
   * One part of a new VM's agent settings (base64), staged under data_dir/settings/<vm> for the
   * container's start command to copy in (settings-file.ts); the part that completes the set
   * installs the files and says `installed`.
   */
  'stage-settings': operation([vmCid(), whole('part'), whole('parts'), text('data')], []),
  /** pid: the container's init while it is being killed (or 0): its storage is released once it is gone. */
  'delete-vm-storage': operation([vmCid(), optional(whole('pid'))], ['busy']),
  'snapshot-disk': operation([diskCid(), snapshotCid(), json('meta')], ['notFound']),
  'delete-snapshot': operation([snapshotCid()], ['notFound']),
  'resize-disk': operation(
    [diskCid(), whole('size')],
    ['notFound', 'inUseElsewhere', 'busy', 'smallerSize', 'noSpace'],
  ),
  'isolate-vm-root': operation([whole('pid')], []),
  /**
   * After create_vm's start: isolate-vm-root, then waits until the start command has copied the
   * staged settings in, and removes the staged files.
   */
  'vm-started': operation([vmCid(), whole('pid')], []),
  'set-default-route': operation([whole('pid'), text('gateway')], []),
  /** cgroup v1 hosts: binds net_cls (and net_prio) to a hierarchy if nothing has (container-init.ts). */
  'net-cls-hierarchy': operation([], []),
} as const;

export type HostOperationName = keyof typeof HOST_OPERATIONS;

type Values<A> = { -readonly [K in keyof A]: A[K] extends HostArg<infer T> ? T : never };

/** What a caller passes to an operation, in order and typed. */
export type HostArgs<Op extends HostOperationName> = Values<(typeof HOST_OPERATIONS)[Op]['args']>;

/** How an operation ended: done, one of its declared outcomes, or failed (the reason is on stderr). */
export type HostOutcome<Op extends HostOperationName> =
  | 'done'
  | (typeof HOST_OPERATIONS)[Op]['outcomes'][number]
  | 'failed';

export function encodeHostArgs<Op extends HostOperationName>(op: Op, values: HostArgs<Op>): string[] {
  const args: readonly HostArg<unknown>[] = HOST_OPERATIONS[op].args;
  return args.map((a, i) => a.encode(values[i]));
}

export function hostOutcome<Op extends HostOperationName>(op: Op, exitCode: number): HostOutcome<Op> {
  if (exitCode === 0) return 'done';
  const declared: readonly HostOutcome<Op>[] = HOST_OPERATIONS[op].outcomes;
  return declared.find((o) => o !== 'done' && o !== 'failed' && HOST_EXIT_CODES[o] === exitCode) ?? 'failed';
}
