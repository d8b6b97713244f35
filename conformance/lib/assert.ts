import { isDeepStrictEqual } from 'node:util';
import type { CpiErrorBody } from './cpi.ts';

export class CheckError extends Error {}

export function ensure(cond: unknown, message: string | (() => string)): asserts cond {
  if (!cond) throw new CheckError(typeof message === 'function' ? message() : message);
}

export function ensureEqual(actual: unknown, expected: unknown, what: string): void {
  if (!isDeepStrictEqual(actual, expected))
    throw new CheckError(
      `${what}: expected ${JSON.stringify(expected)?.slice(0, 600)}, got ${JSON.stringify(actual)?.slice(0, 600)}`,
    );
}

export function ensureErrorType(error: CpiErrorBody, types: string | string[], what: string): void {
  const allowed = Array.isArray(types) ? types : [types];
  ensure(
    allowed.includes(error.type),
    `${what}: expected ${allowed.join(' or ')}, got ${error.type}: ${error.message}`,
  );
}

export const sameSet = (a: readonly string[], b: readonly string[]) =>
  isDeepStrictEqual([...new Set(a)].sort(), [...new Set(b)].sort());

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export const short = (v: unknown, max = 300) => {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s === undefined ? String(v) : s.length > max ? `${s.slice(0, max)}…` : s;
};
