/**
 * The error types the BOSH Director and CLI know (protocol.md §2.1). Any other `type`
 * string makes the Director fail the task with UnknownError, so nothing else is ever sent.
 */
export const ErrorType = {
  CpiError: 'Bosh::Clouds::CpiError',
  NotImplemented: 'Bosh::Clouds::NotImplemented',
  NotSupported: 'Bosh::Clouds::NotSupported',
  CloudError: 'Bosh::Clouds::CloudError',
  VMNotFound: 'Bosh::Clouds::VMNotFound',
  NetworkNotFound: 'Bosh::Clouds::NetworkNotFound',
  DiskNotFound: 'Bosh::Clouds::DiskNotFound',
  DiskNotAttached: 'Bosh::Clouds::DiskNotAttached',
  VMCreationFailed: 'Bosh::Clouds::VMCreationFailed',
  NoDiskSpace: 'Bosh::Clouds::NoDiskSpace',
} as const;

export type ErrorTypeName = (typeof ErrorType)[keyof typeof ErrorType];

export class CpiFailure extends Error {
  constructor(
    readonly type: ErrorTypeName,
    message: string,
    readonly okToRetry = false,
    /** What went wrong underneath (kept for the log, never sent to the caller). */
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = type;
  }
}

export const cpiError = (message: string) => new CpiFailure(ErrorType.CpiError, message);
export const cloudError = (message: string, okToRetry = false, cause?: unknown) =>
  new CpiFailure(ErrorType.CloudError, message, okToRetry, { cause });
export const notImplemented = (message: string) => new CpiFailure(ErrorType.NotImplemented, message);
export const notSupported = (message: string) => new CpiFailure(ErrorType.NotSupported, message);
export const vmNotFound = (vmCid: string) => new CpiFailure(ErrorType.VMNotFound, `VM '${vmCid}' not found`);
export const diskNotFound = (diskCid: string) =>
  new CpiFailure(ErrorType.DiskNotFound, `Disk '${diskCid}' not found`);
export const diskNotAttached = (vmCid: string, diskCid: string) =>
  new CpiFailure(ErrorType.DiskNotAttached, `Disk '${diskCid}' is not attached to VM '${vmCid}'`);
export const networkNotFound = (networkId: string) =>
  new CpiFailure(ErrorType.NetworkNotFound, `Network '${networkId}' not found`);
export const vmCreationFailed = (message: string, okToRetry: boolean) =>
  new CpiFailure(ErrorType.VMCreationFailed, message, okToRetry);
export const noDiskSpace = (message: string) => new CpiFailure(ErrorType.NoDiskSpace, message, true);

/** Turns anything thrown into a CpiFailure; unknown exceptions become CloudError with their message. */
export function asCpiFailure(err: unknown): CpiFailure {
  if (err instanceof CpiFailure) return err;
  if (err instanceof Error) return cloudError(`Unexpected error: ${err.message}`, false, err);
  return cloudError(`Unexpected error: ${String(err)}`);
}
