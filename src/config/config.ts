import { readFileSync } from 'node:fs';
import type { AgentConfig } from '../cpi/types.ts';
import { cpiError } from '../rpc/errors.ts';
import type { CpiContext } from '../rpc/request.ts';
import { anyObject, arrayOf, CheckFailure, object, optional, str } from '../util/check.ts';
import { jsonSyntaxError } from '../util/json.ts';

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

export function readConfigFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
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

/** The cpi-config properties the Director merged into the request context. */
export function contextOverrides(context: CpiContext): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(context)) if (!RESERVED_CONTEXT_KEYS.has(k)) out[k] = v;
  return out;
}

/** Validates the file's shape and the agent section; the backend validates its own section. */
export function parseConfig(raw: unknown, context: CpiContext): CpiConfig {
  try {
    const file = fileCheck(raw, 'config');
    const properties = deepMerge(file.cloud.properties, contextOverrides(context));
    const agent = agentCheck(properties.agent, 'config.cloud.properties.agent') as AgentConfig;
    return { plugin: file.cloud.plugin, properties, agent };
  } catch (e) {
    if (e instanceof CheckFailure) throw cpiError(`Invalid config: ${e.message}`);
    throw e;
  }
}
