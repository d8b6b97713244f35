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

/**
 * A failure that names cloud IDs: the IDs, and how the message is made from them. A layer that
 * knows an ID under another name (a Docker host's local ID behind a host-qualified one) issues
 * the same failure for the caller's ID instead of editing the text.
 */
export interface AboutIds {
  ids: readonly string[];
  describe(ids: readonly string[]): string;
}

export class CpiFailure extends Error {
  readonly about: AboutIds | undefined;

  constructor(
    readonly type: ErrorTypeName,
    message: string,
    readonly okToRetry = false,
    /** What went wrong underneath (kept for the log, never sent to the caller), and the IDs named. */
    options: { cause?: unknown; about?: AboutIds } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = type;
    this.about = options.about;
  }

  /** The same failure about other IDs (same order), caused by this one. */
  withIds(ids: readonly string[]): CpiFailure {
    if (!this.about) return this;
    const about = { ids, describe: this.about.describe };
    return new CpiFailure(this.type, about.describe(ids), this.okToRetry, { cause: this, about });
  }
}

function aboutIds(type: ErrorTypeName, ids: string[], describe: (ids: readonly string[]) => string) {
  return new CpiFailure(type, describe(ids), false, { about: { ids, describe } });
}

export const cpiError = (message: string) => new CpiFailure(ErrorType.CpiError, message);
export const cloudError = (message: string, okToRetry = false, cause?: unknown) =>
  new CpiFailure(ErrorType.CloudError, message, okToRetry, { cause });
export const notImplemented = (message: string) => new CpiFailure(ErrorType.NotImplemented, message);
export const notSupported = (message: string) => new CpiFailure(ErrorType.NotSupported, message);
export const vmNotFound = (vmCid: string) =>
  aboutIds(ErrorType.VMNotFound, [vmCid], ([vm]) => `VM '${vm}' not found`);
export const diskNotFound = (diskCid: string) =>
  aboutIds(ErrorType.DiskNotFound, [diskCid], ([disk]) => `Disk '${disk}' not found`);
export const diskNotAttached = (vmCid: string, diskCid: string) =>
  aboutIds(
    ErrorType.DiskNotAttached,
    [vmCid, diskCid],
    ([vm, disk]) => `Disk '${disk}' is not attached to VM '${vm}'`,
  );
export const networkNotFound = (networkId: string) =>
  aboutIds(ErrorType.NetworkNotFound, [networkId], ([id]) => `Network '${id}' not found`);
export const vmCreationFailed = (message: string, okToRetry: boolean) =>
  new CpiFailure(ErrorType.VMCreationFailed, message, okToRetry);
export const noDiskSpace = (message: string) => new CpiFailure(ErrorType.NoDiskSpace, message, true);

/** Turns anything thrown into a CpiFailure; unknown exceptions become CloudError with their message. */
export function asCpiFailure(err: unknown): CpiFailure {
  if (err instanceof CpiFailure) return err;
  if (err instanceof Error) return cloudError(`Unexpected error: ${err.message}`, false, err);
  return cloudError(`Unexpected error: ${String(err)}`);
}
