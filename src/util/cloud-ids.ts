import { randomUUID } from 'node:crypto';

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';

/**
 * Cloud IDs made of a kind prefix and a UUID, and the strict check every ID from a request
 * passes before it reaches a path, an engine or a command line.
 */
export function cloudIds<K extends string>(kinds: readonly K[]) {
  const patterns = new Map(kinds.map((kind) => [kind, new RegExp(`^${kind}-${UUID}$`)]));
  return {
    newId: (kind: K): string => `${kind}-${randomUUID()}`,
    isId: (kind: K, value: string): boolean => patterns.get(kind)?.test(value) ?? false,
  };
}
