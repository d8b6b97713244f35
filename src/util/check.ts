/**
 * A small validator: each check turns an unknown value into a typed one or throws a
 * CheckFailure naming the path, what was expected and what was found. Hand-written instead of a
 * schema library because the CPI is spawned for every call and this costs nothing to load.
 */
export class CheckFailure extends Error {
  constructor(
    readonly path: string,
    readonly expected: string,
    readonly found: string,
  ) {
    super(`${path} must be ${expected}, got ${found}`);
  }
}

export type Check<T> = (value: unknown, path: string) => T;
export type Checked<C> = C extends Check<infer T> ? T : never;

export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return value.length > 40 ? 'a string' : JSON.stringify(value);
  if (typeof value === 'number')
    return Number.isInteger(value) ? `the integer ${value}` : `the number ${value}`;
  return `a ${typeof value}`;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

export function str(
  opts: { nonEmpty?: boolean; pattern?: RegExp; patternName?: string } = {},
): Check<string> {
  return (v, path) => {
    if (typeof v !== 'string') throw new CheckFailure(path, 'a string', describe(v));
    if (opts.nonEmpty && v.length === 0)
      throw new CheckFailure(path, 'a non-empty string', 'an empty string');
    if (opts.pattern && !opts.pattern.test(v))
      throw new CheckFailure(path, opts.patternName ?? `a string matching ${opts.pattern}`, describe(v));
    return v;
  };
}

export function int(opts: { min?: number; max?: number } = {}): Check<number> {
  const expected = `an integer${opts.min !== undefined ? ` >= ${opts.min}` : ''}${opts.max !== undefined ? ` <= ${opts.max}` : ''}`;
  return (v, path) => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v))
      throw new CheckFailure(path, expected, describe(v));
    if ((opts.min !== undefined && v < opts.min) || (opts.max !== undefined && v > opts.max))
      throw new CheckFailure(path, expected, describe(v));
    return v;
  };
}

export const bool = (): Check<boolean> => (v, path) => {
  if (typeof v !== 'boolean') throw new CheckFailure(path, 'a boolean', describe(v));
  return v;
};

export function oneOf<const T extends readonly string[]>(values: T): Check<T[number]> {
  return (v, path) => {
    if (typeof v !== 'string' || !values.includes(v))
      throw new CheckFailure(path, `one of ${values.map((x) => JSON.stringify(x)).join(', ')}`, describe(v));
    return v as T[number];
  };
}

/** Any JSON object, kept as it is. */
export const anyObject = (): Check<Record<string, unknown>> => (v, path) => {
  if (!isPlainObject(v)) throw new CheckFailure(path, 'an object', describe(v));
  return v;
};

export function arrayOf<T>(item: Check<T>): Check<T[]> {
  return (v, path) => {
    if (!Array.isArray(v)) throw new CheckFailure(path, 'an array', describe(v));
    return v.map((x, i) => item(x, `${path}[${i}]`));
  };
}

export function recordOf<T>(value: Check<T>): Check<Record<string, T>> {
  return (v, path) => {
    if (!isPlainObject(v)) throw new CheckFailure(path, 'an object', describe(v));
    const out: Record<string, T> = {};
    for (const [k, x] of Object.entries(v)) out[k] = value(x, `${path}.${k}`);
    return out;
  };
}

export function optional<T>(check: Check<T>): Check<T | undefined>;
export function optional<T>(check: Check<T>, fallback: T): Check<T>;
export function optional<T>(check: Check<T>, fallback?: T): Check<T | undefined> {
  return (v, path) => (v === undefined ? fallback : check(v, path));
}

export function nullable<T>(check: Check<T>): Check<T | null> {
  return (v, path) => (v === null ? null : check(v, path));
}

export function either<A, B>(a: Check<A>, b: Check<B>, expected: string): Check<A | B> {
  return (v, path) => {
    try {
      return a(v, path);
    } catch {
      try {
        return b(v, path);
      } catch {
        throw new CheckFailure(path, expected, describe(v));
      }
    }
  };
}

type Shape = Record<string, Check<unknown>>;
type ShapeOut<S extends Shape> = { [K in keyof S]: Checked<S[K]> };

/** An object with known keys; unknown keys are kept (BOSH adds keys over time) unless `strict`. */
export function object<S extends Shape>(shape: S, opts: { strict?: boolean } = {}): Check<ShapeOut<S>> {
  return (v, path) => {
    if (!isPlainObject(v)) throw new CheckFailure(path, 'an object', describe(v));
    if (opts.strict) {
      for (const k of Object.keys(v))
        if (!(k in shape)) throw new CheckFailure(`${path}.${k}`, 'absent (unknown field)', describe(v[k]));
    }
    const out: Record<string, unknown> = { ...v };
    for (const [k, check] of Object.entries(shape)) {
      const x = check(v[k], `${path}.${k}`);
      if (x === undefined) delete out[k];
      else out[k] = x;
    }
    return out as ShapeOut<S>;
  };
}
