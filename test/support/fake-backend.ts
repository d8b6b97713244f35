import type { Backend, BackendContext, BackendDescriptor, Capabilities } from '../../src/cpi/backend.ts';
import type { CreateVmInput, Networks } from '../../src/cpi/types.ts';
import { asCpiFailure } from '../../src/rpc/errors.ts';
import type { Call } from '../../src/rpc/methods.ts';

/** One call a fake backend received: the Backend method name and its arguments. */
export interface RecordedCall {
  method: string;
  args: unknown[];
}

/** The abilities a real backend may lack (the RPC layer then answers NotImplemented). */
export type OptionalCapability = keyof Capabilities;

const CAPABILITY_METHODS: Record<OptionalCapability, string[]> = {
  diskUpdater: ['updateDisk'],
  snapshots: ['snapshotDisk', 'deleteSnapshot'],
  managedNetworks: ['createNetwork', 'deleteNetwork'],
};

type MethodName =
  | Exclude<keyof Backend, 'capabilities' | 'failure' | 'close'>
  | 'updateDisk'
  | 'snapshotDisk'
  | 'deleteSnapshot'
  | 'createNetwork'
  | 'deleteNetwork';

export interface FakeBackendOptions {
  /** Abilities to leave out, as a backend without them would. */
  without?: OptionalCapability[];
  /** Replaces the canned behaviour of a method (to throw, or to return something odd). */
  overrides?: Partial<Record<MethodName, (...args: never[]) => unknown>>;
}

export type FakeBackend = Backend & { calls: RecordedCall[]; closed: number };

export const FAKE_STEMCELL_FORMATS = ['fake-tar', 'fake-light'] as const;

/** A backend with predictable results that records every call it receives. */
export function fakeBackend(options: FakeBackendOptions = {}): FakeBackend {
  const calls: RecordedCall[] = [];
  const canned: Record<string, (...args: never[]) => unknown> = {
    createStemcell: async () => 'stemcell-fake-1',
    deleteStemcell: async () => undefined,
    createVm: async (input: CreateVmInput) => ({
      vmCid: 'vm-fake-1',
      networks: withAddresses(input.networks),
    }),
    deleteVm: async () => undefined,
    hasVm: async () => true,
    rebootVm: async () => undefined,
    setVmMetadata: async () => undefined,
    calculateVmCloudProperties: (resources: { cpu: number; ram: number }) => ({
      cpus: resources.cpu,
      memory_mib: resources.ram,
    }),
    createDisk: async () => 'disk-fake-1',
    deleteDisk: async () => undefined,
    hasDisk: async () => false,
    attachDisk: async (_vmCid: string, diskCid: string) => `/warden-cpi-dev/${diskCid}`,
    detachDisk: async () => undefined,
    setDiskMetadata: async () => undefined,
    getDisks: async () => ['disk-fake-1', 'disk-fake-2'],
    resizeDisk: async () => undefined,
    updateDisk: async () => 'disk-fake-updated',
    snapshotDisk: async () => 'snapshot-fake-1',
    deleteSnapshot: async () => undefined,
    createNetwork: async () => ({
      networkId: 'network-fake-1',
      details: { range: '10.0.0.0/24', gateway: '10.0.0.1', reserved: [] },
      cloudProperties: {},
    }),
    deleteNetwork: async () => undefined,
  };
  Object.assign(canned, options.overrides ?? {});
  const recorded = (method: string) => {
    const behaviour = canned[method];
    if (!behaviour) throw new Error(`the fake backend has no method ${method}`);
    return (...args: never[]) => {
      calls.push({ method, args });
      return behaviour(...args);
    };
  };

  const backend: Record<string, unknown> = { calls, closed: 0 };
  const optional = new Set(Object.values(CAPABILITY_METHODS).flat());
  for (const method of Object.keys(canned)) if (!optional.has(method)) backend[method] = recorded(method);
  const capabilities: Record<string, Record<string, unknown>> = {};
  for (const [capability, methods] of Object.entries(CAPABILITY_METHODS)) {
    if (options.without?.includes(capability as OptionalCapability)) continue;
    capabilities[capability] = Object.fromEntries(methods.map((m) => [m, recorded(m)]));
  }
  backend.capabilities = capabilities;
  backend.failure = asCpiFailure;
  backend.close = () => {
    (backend.closed as number)++;
  };
  return backend as unknown as FakeBackend;
}

/** The networks as a runtime would report them: a dynamic network gets an address. */
function withAddresses(networks: Networks): Networks {
  const out: Networks = {};
  for (const [name, spec] of Object.entries(networks))
    out[name] = spec.type === 'dynamic' ? { ...spec, ip: '172.17.0.2' } : spec;
  return out;
}

/**
 * A Call as the engine builds it for dispatch(), counting how often the backend was asked for
 * (info must never ask).
 */
export function fakeCall(backend: Backend, apiVersion = 2): Call & { backendLoads: number } {
  const call = {
    apiVersion,
    stemcellFormats: FAKE_STEMCELL_FORMATS,
    backendLoads: 0,
    backend: async () => {
      call.backendLoads++;
      return backend;
    },
  };
  return call;
}

/** A registry entry for the fake backend, recording each load and the context the engine built. */
export interface FakeDescriptor extends BackendDescriptor {
  loads: number;
  contexts: BackendContext[];
  checkedProperties: unknown[];
}

export function fakeDescriptor(
  backend: Backend,
  opts: { checkProperties?: (raw: unknown) => unknown; onCreate?: (context: BackendContext) => void } = {},
): FakeDescriptor {
  const descriptor: FakeDescriptor = {
    stemcellFormats: FAKE_STEMCELL_FORMATS,
    loads: 0,
    contexts: [],
    checkedProperties: [],
    // What a cpi-config of the fake plugin may set (the handle tests override these).
    contextOverridable: { zone: true, limits: true, token: true },
    checkProperties: (raw) => {
      descriptor.checkedProperties.push(raw);
      return opts.checkProperties ? opts.checkProperties(raw) : raw;
    },
    load: async () => {
      descriptor.loads++;
      return {
        create: (context) => {
          descriptor.contexts.push(context);
          opts.onCreate?.(context);
          return backend;
        },
      };
    },
  };
  return descriptor;
}
