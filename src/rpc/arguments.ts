import type { DiskCid, Metadata, NetworkSpec } from '../cpi/types.ts';
import {
  anyObject,
  arrayOf,
  type Check,
  CheckFailure,
  describe,
  either,
  int,
  nullable,
  object,
  oneOf,
  optional,
  recordOf,
  str,
} from '../util/check.ts';
import { requestCid } from '../util/cloud-ids.ts';

/** Checks for the argument types that recur across CPI methods. */

/** cloud_properties: an object; null (sent by some callers for "none") means {}. */
export const cloudProperties = (): Check<Record<string, unknown>> => {
  const check = nullable(anyObject());
  return (v, path) => check(v, path) ?? {};
};

/** Metadata values are strings by contract; numbers and booleans are accepted and stringified. */
export const metadata = (): Check<Metadata> => (v, path) => {
  const raw = nullable(anyObject())(v, path) ?? {};
  const out: Metadata = {};
  for (const [k, x] of Object.entries(raw)) {
    if (x === null) continue;
    if (typeof x === 'string') out[k] = x;
    else if (typeof x === 'number' || typeof x === 'boolean') out[k] = String(x);
    else throw new CheckFailure(`${path}.${k}`, 'a string', describe(x));
  }
  return out;
};

const stringList = () => nullable(arrayOf(str()));

export const networkSpec = (): Check<NetworkSpec> => {
  const check = object({
    type: optional(oneOf(['manual', 'dynamic', 'vip'] as const), 'manual'),
    ip: optional(str()),
    netmask: optional(str()),
    gateway: optional(str()),
    prefix: optional(either(str(), int(), 'a string or an integer')),
    dns: optional(stringList()),
    default: optional(stringList()),
    cloud_properties: optional(cloudProperties(), {}),
  });
  return (v, path) => {
    const { prefix, dns, default: defaults, ...rest } = check(v, path);
    const out: NetworkSpec = { ...rest };
    if (prefix !== undefined) out.prefix = String(prefix);
    // null (sent by some callers for "none") leaves the key out.
    if (dns) out.dns = dns;
    if (defaults) out.default = defaults;
    return out;
  };
};

export const networks = () => recordOf(networkSpec());
export const diskCids = (): Check<DiskCid[]> => (v, path) =>
  nullable(arrayOf(requestCid('disk')))(v, path) ?? [];
export const vmEnv = (): Check<Record<string, unknown>> => (v, path) => nullable(anyObject())(v, path) ?? {};
