import type { CpiFailure } from './errors.ts';

export interface CpiResponse {
  result: unknown;
  error: null | { type: string; message: string; ok_to_retry: boolean };
  log: string;
}

export const successResponse = (result: unknown, log: string): CpiResponse => ({
  result: result === undefined ? null : result,
  error: null,
  log,
});

export const errorResponse = (
  failure: CpiFailure,
  log: string,
  redact: (s: string) => string,
): CpiResponse => ({
  result: null,
  error: { type: failure.type, message: redact(failure.message), ok_to_retry: failure.okToRetry },
  log,
});
