import type { Backend } from './backend.ts';

/** The methods that never reach the IaaS (and `close`, which must stay synchronous). */
const UNGUARDED = new Set<PropertyKey>(['close', 'calculateVmCloudProperties']);

/**
 * Wraps a backend so that every IaaS-specific error its async methods throw is translated by
 * `translate` (into a CpiFailure naming the object and the cause) before the RPC layer sees it.
 */
export function guardBackend(backend: Backend, translate: (e: unknown) => unknown): Backend {
  return new Proxy(backend, {
    get(obj, key, receiver) {
      const value = Reflect.get(obj, key, receiver);
      if (typeof value !== 'function' || UNGUARDED.has(key)) return value;
      return async (...args: unknown[]) => {
        try {
          return await value.apply(obj, args);
        } catch (e) {
          throw translate(e);
        }
      };
    },
  });
}
