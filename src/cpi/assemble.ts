import type { CpiFailure } from '../rpc/errors.ts';
import type {
  Backend,
  DiskMethods,
  DiskUpdater,
  ManagedNetworks,
  Snapshots,
  StemcellMethods,
  VmMethods,
} from './backend.ts';
import { calculateVmCloudProperties } from './cloud-properties.ts';

/** An interface's methods as a backend's modules export them: functions that take its context first. */
export type ContextFirst<C, M> = {
  [K in keyof M]: M[K] extends (...args: infer A) => infer R ? (ctx: C, ...args: A) => R : never;
};

type CoreMethods = StemcellMethods & Omit<VmMethods, 'calculateVmCloudProperties'> & DiskMethods;

const CORE_METHODS = [
  'createStemcell',
  'deleteStemcell',
  'createVm',
  'deleteVm',
  'hasVm',
  'rebootVm',
  'setVmMetadata',
  'createDisk',
  'deleteDisk',
  'hasDisk',
  'attachDisk',
  'detachDisk',
  'setDiskMetadata',
  'getDisks',
  'resizeDisk',
] as const satisfies readonly (keyof CoreMethods)[];

/** What a backend is made of: its context, the module functions that work on it, and its error boundary. */
export interface BackendParts<C> {
  context: C;
  /** Every required method, e.g. `{ ...stemcells, ...vms, ...disks }` (the modules' other exports are ignored). */
  methods: ContextFirst<C, CoreMethods>;
  diskUpdater?: ContextFirst<C, DiskUpdater>;
  snapshots?: ContextFirst<C, Snapshots>;
  managedNetworks?: ContextFirst<C, ManagedNetworks>;
  failure(error: unknown): CpiFailure;
  close(): void;
}

function bind<C, M>(context: C, functions: ContextFirst<C, M>, names: readonly (keyof M)[]): M {
  const bound: Partial<Record<keyof M, unknown>> = {};
  for (const name of names) {
    const fn: (ctx: C, ...args: unknown[]) => unknown = functions[name];
    bound[name] = (...args: unknown[]) => fn(context, ...args);
  }
  // Each name was bound to the function of the same name with the context given first.
  return bound as M;
}

/** The one place a backend's context is handed to its module functions. */
export function assembleBackend<C>(parts: BackendParts<C>): Backend {
  const { context } = parts;
  return {
    ...bind<C, CoreMethods>(context, parts.methods, CORE_METHODS),
    calculateVmCloudProperties,
    capabilities: {
      diskUpdater: parts.diskUpdater && bind(context, parts.diskUpdater, ['updateDisk']),
      snapshots: parts.snapshots && bind(context, parts.snapshots, ['snapshotDisk', 'deleteSnapshot']),
      managedNetworks:
        parts.managedNetworks && bind(context, parts.managedNetworks, ['createNetwork', 'deleteNetwork']),
    },
    failure: parts.failure,
    close: parts.close,
  };
}
