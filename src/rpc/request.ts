import { jsonSyntaxError } from '../util/json.ts';
import { cpiError, notImplemented } from './errors.ts';

export const MAX_API_VERSION = 3;
export const MAX_REQUEST_BYTES = 16 * 1024 * 1024;

export interface CpiContext {
  director_uuid?: string;
  request_id?: string;
  vm?: { stemcell?: { api_version?: number } };
  [cpiConfigProperty: string]: unknown;
}

export interface CpiRequest {
  method: string;
  arguments: unknown[];
  context: CpiContext;
  apiVersion: number;
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Decodes and checks the request envelope; every problem is a Bosh::Clouds::CpiError. */
export function parseRequest(bytes: Buffer): CpiRequest {
  if (bytes.length > MAX_REQUEST_BYTES)
    throw cpiError(`Request is ${bytes.length} bytes, more than the ${MAX_REQUEST_BYTES} bytes accepted`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw cpiError('Request is not valid UTF-8');
  }
  if (text.trim() === '') throw cpiError('Request is empty: expected one JSON object on stdin');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw cpiError(`Request is not valid JSON: ${jsonSyntaxError(e)}`);
  }
  if (!isObject(parsed)) throw cpiError('Request must be a JSON object');
  const { method, arguments: args, context = {}, api_version: apiVersion = 1 } = parsed;
  if (typeof method !== 'string' || method === '') throw cpiError("Request must have a string 'method'");
  if (!Array.isArray(args)) throw cpiError(`Request for '${method}' must have an array 'arguments'`);
  if (!isObject(context)) throw cpiError(`Request for '${method}' has a 'context' that is not an object`);
  if (context.director_uuid !== undefined && typeof context.director_uuid !== 'string')
    throw cpiError(`Request for '${method}' has a context.director_uuid that is not a string`);
  if (context.request_id !== undefined && typeof context.request_id !== 'string')
    throw cpiError(`Request for '${method}' has a context.request_id that is not a string`);
  if (typeof apiVersion !== 'number' || !Number.isInteger(apiVersion) || apiVersion < 1)
    throw cpiError(`Request for '${method}' has an api_version that is not a positive integer`);
  if (apiVersion > MAX_API_VERSION)
    throw notImplemented(
      `CPI API version requested is '${apiVersion}', max supported is '${MAX_API_VERSION}'`,
    );
  return { method, arguments: args, context: context as CpiContext, apiVersion };
}

export function stemcellApiVersion(context: CpiContext): number | undefined {
  const v = context.vm?.stemcell?.api_version;
  return typeof v === 'number' ? v : undefined;
}
