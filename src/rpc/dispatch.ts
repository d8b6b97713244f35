import { CheckFailure } from '../util/check.ts';
import { cloudError, notImplemented } from './errors.ts';
import { type Call, METHODS, type MethodDefinition } from './methods.ts';
import type { CpiRequest } from './request.ts';

export function lookupMethod(name: string): MethodDefinition {
  const method = Object.hasOwn(METHODS, name) ? METHODS[name] : undefined;
  if (!method) throw notImplemented(`Method is not known, got '${name}'`);
  return method;
}

/** Checks the arguments against the method's definition; a mismatch is a CloudError naming the argument. */
export function checkArguments(name: string, method: MethodDefinition, args: unknown[]): unknown[] {
  const required = method.args.filter((a) => !a.fallback).length;
  if (args.length < required || args.length > method.args.length) {
    const names = method.args.map((a) => (a.fallback ? `[${a.name}]` : a.name)).join(', ');
    const expected = required === method.args.length ? `${required}` : `${required} to ${method.args.length}`;
    throw cloudError(`${name} expects ${expected} argument(s) (${names}), got ${args.length}`);
  }
  return method.args.map((definition, i) => {
    if (i >= args.length) return definition.fallback?.value;
    try {
      return definition.check(args[i], definition.name);
    } catch (e) {
      if (e instanceof CheckFailure)
        throw cloudError(`${name}: argument ${i + 1} (${definition.name}) is invalid: ${e.message}`);
      throw e;
    }
  });
}

export async function dispatch(request: CpiRequest, call: Call): Promise<unknown> {
  const method = lookupMethod(request.method);
  const args = checkArguments(request.method, method, request.arguments);
  return method.run(args, call);
}
