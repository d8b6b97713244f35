/**
 * Random names and hashes through the Web Crypto global and, on Bun, its native hasher: loading
 * `node:crypto` costs the shipped executable ~2 ms per call (bench/README.md, "Start-up").
 */
import type * as NodeCrypto from 'node:crypto';
import { bun } from './bun.ts';

export const randomUuid = (): string => globalThis.crypto.randomUUID();

/** `bytes` random bytes as lowercase hex. */
export function randomHex(bytes: number): string {
  const values = globalThis.crypto.getRandomValues(new Uint8Array(bytes));
  let hex = '';
  for (const b of values) hex += b.toString(16).padStart(2, '0');
  return hex;
}

/** The SHA-256 of a UTF-8 string, as hex. */
export function sha256Hex(text: string): string {
  if (bun) {
    const hasher = new bun.CryptoHasher('sha256');
    hasher.update(text);
    return hasher.digest('hex');
  }
  const crypto: typeof NodeCrypto = process.getBuiltinModule('node:crypto');
  return crypto.createHash('sha256').update(text).digest('hex');
}
