import type { AgentConfig } from '../cpi/types.ts';
import { cpiError } from '../rpc/errors.ts';
import type { CpiContext } from '../rpc/request.ts';
import { anyObject, arrayOf, CheckFailure, object, optional, str } from '../util/check.ts';
import { jsonSyntaxError } from '../util/json.ts';
import { readTextFile } from '../util/process-io.ts';

export interface CpiConfig {
  plugin: string;
  /** cloud.properties after the request context was merged over it. */
  properties: Record<string, unknown>;
  agent: AgentConfig;
}

/** Context keys the Director always sends; everything else comes from a cpi-config and overrides the file. */
const RESERVED_CONTEXT_KEYS = new Set(['director_uuid', 'request_id', 'vm']);

const MBUS = /^(nats|https):\/\/./;

const agentCheck = object({
  mbus: str({ pattern: MBUS, patternName: 'a nats:// or https:// URL' }),
  ntp: optional(arrayOf(str()), []),
  blobstore: optional(object({ provider: str({ nonEmpty: true }), options: optional(anyObject(), {}) })),
});

const fileCheck = object({
  cloud: object({
    plugin: str({ nonEmpty: true }),
    properties: anyObject(),
  }),
});

export async function readConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readTextFile(path);
  } catch (e) {
    throw cpiError(
      `Cannot read config file '${path}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw cpiError(`Config file '${path}' is not valid JSON: ${jsonSyntaxError(e)}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Deep-merges `over` onto `base`: objects merge key by key, anything else replaces. */
export function deepMerge(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const current = out[k];
    out[k] = isObject(current) && isObject(v) ? deepMerge(current, v) : v;
  }
  return out;
}

/**
 * What a cpi-config may override: the endpoints and credentials that differ between the CPIs of a
 * multi-CPI Director. Everything else (binaries, images, data_dir, start commands, privilege,
 * allowlists) comes from the operator's file only: whoever can upload a cpi-config must not get
 * to run e.g. another qemu.qemu_binary. `true` allows a whole subtree; `items` describes each
 * element of a list. Each backend names the keys of its own section (BackendDescriptor).
 */
export type Overridable = true | { readonly [key: string]: Overridable } | { readonly items: Overridable };

const AGENT_OVERRIDABLE: Overridable = { mbus: true, ntp: true, blobstore: true };

function checkOverridable(value: unknown, allowed: Overridable, path: string, root: Overridable): void {
  if (allowed === true) return;
  if ('items' in allowed) {
    if (!Array.isArray(value)) throw cpiError(`Invalid request context: ${path} must be a list`);
    for (const [i, item] of value.entries())
      checkOverridable(item, allowed.items as Overridable, `${path}[${i}]`, root);
    return;
  }
  if (!isObject(value)) throw cpiError(`Invalid request context: ${path} must be an object`);
  for (const [k, v] of Object.entries(value)) {
    const rule = Object.hasOwn(allowed, k) ? (allowed as Record<string, Overridable>)[k] : undefined;
    if (rule === undefined)
      throw cpiError(
        `The request context may not override ${firstLeaf(v, `${path}.${k}`)}: a cpi-config may set only endpoints and credentials (${overridableKeys(root).join(', ') || 'none'}); set it in the CPI's own config file`,
      );
    checkOverridable(v, rule, `${path}.${k}`, root);
  }
}

/** `qemu.qemu_binary` rather than `qemu`, so the message names the key the cpi-config set. */
function firstLeaf(value: unknown, path: string): string {
  const [first] = isObject(value) ? Object.entries(value) : [];
  return first ? firstLeaf(first[1], `${path}.${first[0]}`) : path;
}

function overridableKeys(node: Overridable, prefix = ''): string[] {
  if (node === true) return [prefix];
  if ('items' in node) return overridableKeys(node.items as Overridable, `${prefix}[]`);
  return Object.entries(node).flatMap(([k, v]) => overridableKeys(v, prefix ? `${prefix}.${k}` : k));
}

/** What a request context may change, as the backends declare it. */
export interface ContextRules {
  /** Keys of a plugin's own section a request context may override. */
  overridableOf(plugin: string): Overridable | undefined;
  /** Every backend's section name: a context naming one is checked even when it is not the plugin's. */
  sections: readonly string[];
}

const NO_BACKENDS: ContextRules = { overridableOf: () => undefined, sections: [] };

/**
 * The cpi-config properties the Director merged into the request context. A key that names a
 * section of the config (`agent`, a backend's section, anything in the file's cloud.properties)
 * may change only what the rules allow: the agent's endpoints and credentials and the keys the
 * plugin names. Other keys are left out (a newer Director may send keys of its own).
 */
export function contextOverrides(
  context: CpiContext,
  plugin = '',
  backendOverridable: Overridable = {},
  guardedSections: Iterable<string> = [],
): Record<string, unknown> {
  const guarded = new Set(['agent', ...(plugin ? [plugin] : []), ...guardedSections]);
  const entries = Object.entries(context).filter(([k]) => !RESERVED_CONTEXT_KEYS.has(k) && guarded.has(k));
  const root: Overridable = plugin
    ? { agent: AGENT_OVERRIDABLE, [plugin]: backendOverridable }
    : { agent: AGENT_OVERRIDABLE };
  checkOverridable(Object.fromEntries(entries), root, 'cloud.properties', root);
  return Object.fromEntries(entries);
}

/**
 * Validates the file's shape and the agent section; the backend validates its own section.
 * `rules` say what a request context may override.
 */
export function parseConfig(raw: unknown, context: CpiContext, rules: ContextRules = NO_BACKENDS): CpiConfig {
  try {
    const file = fileCheck(raw, 'config');
    const plugin = file.cloud.plugin;
    const sections = [...rules.sections, ...Object.keys(file.cloud.properties)];
    const overrides = contextOverrides(context, plugin, rules.overridableOf(plugin), sections);
    const properties = deepMerge(file.cloud.properties, overrides);
    const agent = agentCheck(properties.agent, 'config.cloud.properties.agent') as AgentConfig;
    return { plugin: file.cloud.plugin, properties, agent };
  } catch (e) {
    if (e instanceof CheckFailure) throw cpiError(`Invalid config: ${e.message}`);
    throw e;
  }
}
