import {
  type CpiErrorBody,
  type CpiResponse,
  cpiRequest,
  type ProcessRun,
  runProcess,
} from './cpi-process.ts';

export type { CpiErrorBody, CpiResponse };

/** The error types the Director and the CLI know (protocol.md §2.1); any other type fails a Director task. */
export const KNOWN_ERROR_TYPES = new Set([
  'Bosh::Clouds::CpiError',
  'Bosh::Clouds::NotImplemented',
  'Bosh::Clouds::NotSupported',
  'Bosh::Clouds::CloudError',
  'Bosh::Clouds::VMNotFound',
  'Bosh::Clouds::NetworkNotFound',
  'Bosh::Clouds::DiskNotFound',
  'Bosh::Clouds::DiskNotAttached',
  'Bosh::Clouds::VMCreationFailed',
  'Bosh::Clouds::NoDiskSpace',
]);

export interface CpiRun extends Omit<ProcessRun, 'timedOut'> {
  label: string;
  /** The parsed response when stdout held one well-formed response. */
  response?: CpiResponse;
  /** Every way the output broke the framing contract (protocol.md §1.3, §1.4); empty when fine. */
  framing: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks stdout and the exit code against the framing contract. */
export function framingProblems(
  stdout: string,
  exitCode: number | null,
): { problems: string[]; response?: CpiResponse } {
  const problems: string[] = [];
  if (exitCode !== 0)
    problems.push(`exit code ${exitCode} (the CLI discards any response of a non-zero exit)`);
  const text = stdout.replace(/\n$/, '');
  if (text.includes('\n')) problems.push('stdout holds more than one line');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    problems.push(`stdout is not one JSON document: ${JSON.stringify(stdout.slice(0, 200))}`);
    return { problems };
  }
  if (!isObject(parsed)) {
    problems.push('the response is not a JSON object');
    return { problems };
  }
  const keys = Object.keys(parsed).sort();
  if (keys.join(',') !== 'error,log,result')
    problems.push(`response keys are [${keys.join(', ')}], not exactly result, error, log`);
  if (typeof parsed.log !== 'string')
    problems.push(`log is ${JSON.stringify(parsed.log)?.slice(0, 60)}, not a string`);
  const error = parsed.error;
  if (error !== null) {
    if (!isObject(error)) problems.push('error is neither null nor an object');
    else {
      if (typeof error.type !== 'string') problems.push('error.type is not a string');
      else if (!KNOWN_ERROR_TYPES.has(error.type))
        problems.push(`error.type '${error.type}' is not a type the Director knows`);
      if (typeof error.message !== 'string') problems.push('error.message is not a string');
      if (typeof error.ok_to_retry !== 'boolean') problems.push('error.ok_to_retry is not a boolean');
      const extra = Object.keys(error).filter((k) => !['type', 'message', 'ok_to_retry'].includes(k));
      if (extra.length) problems.push(`error has unexpected keys ${extra.join(', ')}`);
    }
    if (!('result' in parsed) || parsed.result !== null)
      problems.push('result is not null although error is set');
  }
  if (!('result' in parsed)) problems.push('result is missing');
  return { problems, response: parsed as unknown as CpiResponse };
}

export class CpiCallError extends Error {
  constructor(
    readonly method: string,
    readonly run: CpiRun,
  ) {
    const e = run.response?.error;
    super(
      e
        ? `${method} failed: ${e.type}: ${e.message}`
        : `${method} gave no usable response (exit ${run.exitCode}${run.signal ? `, ${run.signal}` : ''}; ${run.framing.join('; ')}): stderr ${run.stderr.slice(-500)}`,
    );
  }
  get type(): string | undefined {
    return this.run.response?.error?.type;
  }
}

export interface RunOptions {
  /** SIGKILL the whole process group after this many ms (the fault suite). */
  killAfterMs?: number;
  /** Give up (and SIGKILL) after this many ms; the run counts as a hang. */
  timeoutMs?: number;
  label?: string;
  /** Extra environment, e.g. PATH limited the way the Director limits it. */
  env?: Record<string, string>;
}

export interface RequestOptions {
  apiVersion?: number | null;
  context?: Record<string, unknown>;
  /** Top-level keys added to the request (unknown-field cases). */
  extra?: Record<string, unknown>;
}

/**
 * A CPI seen as a black box: a shell command plus a config file. Each call is a new process
 * (one request on stdin, one response on stdout), exactly as the Director runs it. Every run is
 * kept so later checks (secrets) can scan all output the CPI ever produced.
 */
export class Cpi {
  readonly runs: CpiRun[] = [];
  /** Every framing problem seen on a run that was not killed, for the suite-wide framing check. */
  readonly framingFailures: Array<{ label: string; problems: string[] }> = [];

  constructor(
    readonly command: string,
    readonly configPath: string,
    readonly directorUuid: string,
    /** Sent in every request that does not name its own (set once the suite negotiated it). */
    public apiVersion = 2,
    private readonly shared?: Cpi,
  ) {}

  /** The same CPI with another config (e.g. pointing at the second engine); runs are recorded in one place. */
  withConfig(configPath: string, directorUuid = this.directorUuid): Cpi {
    return new Cpi(this.command, configPath, directorUuid, this.apiVersion, this.shared ?? this);
  }

  private record(run: CpiRun): void {
    const root = this.shared ?? this;
    root.runs.push(run);
    if (!run.killed && run.framing.length)
      root.framingFailures.push({ label: run.label, problems: run.framing });
  }

  get allRuns(): CpiRun[] {
    return (this.shared ?? this).runs;
  }

  async raw(input: string | Buffer, opts: RunOptions = {}): Promise<CpiRun> {
    const timeoutMs = opts.timeoutMs ?? 300_000;
    // exec: the CPI's process is the group leader, so a kill reaches it and everything it forked.
    const p = await runProcess(
      ['/bin/sh', '-c', `exec ${this.command} "$@"`, 'cpi', this.configPath],
      input,
      {
        env: { ...process.env, ...(opts.env ?? {}) },
        ...(opts.killAfterMs !== undefined ? { killAfterMs: opts.killAfterMs } : {}),
        timeoutMs,
      },
    );
    const { problems, response } = framingProblems(p.stdout, p.exitCode);
    const run: CpiRun = {
      label: opts.label ?? '(raw input)',
      exitCode: p.exitCode,
      signal: p.signal,
      stdout: p.stdout,
      stderr: p.stderr,
      ms: p.ms,
      killed: p.killed,
      ...(problems.length === 0 && response ? { response } : {}),
      framing: p.timedOut ? [`no response within ${timeoutMs / 1000} s (hung)`, ...problems] : problems,
    };
    this.record(run);
    return run;
  }

  requestText(method: string, args: unknown[], opts: RequestOptions = {}): string {
    return cpiRequest(method, args, {
      directorUuid: this.directorUuid,
      apiVersion: opts.apiVersion === undefined ? this.apiVersion : opts.apiVersion,
      ...(opts.context ? { context: opts.context } : {}),
      ...(opts.extra ? { extra: opts.extra } : {}),
    });
  }

  request(method: string, args: unknown[], opts: RequestOptions & RunOptions = {}): Promise<CpiRun> {
    return this.raw(this.requestText(method, args, opts), {
      label: `${method}(${describeArgs(args)})`,
      ...opts,
    });
  }

  /** The result, or a CpiCallError carrying the run. */
  async call<T = unknown>(
    method: string,
    args: unknown[],
    opts: RequestOptions & RunOptions = {},
  ): Promise<T> {
    const run = await this.request(method, args, opts);
    if (!run.response || run.response.error) throw new CpiCallError(method, run);
    return run.response.result as T;
  }

  /** The error a call must give; fails when it succeeds or gives no usable response. */
  async callError(
    method: string,
    args: unknown[],
    opts: RequestOptions & RunOptions = {},
  ): Promise<CpiErrorBody> {
    const run = await this.request(method, args, opts);
    if (!run.response) throw new CpiCallError(method, run);
    if (!run.response.error)
      throw new Error(
        `${method} succeeded (result ${JSON.stringify(run.response.result)?.slice(0, 200)}) where an error was due`,
      );
    return run.response.error;
  }
}

export function describeArgs(args: unknown[]): string {
  const s = JSON.stringify(args) ?? '';
  return s.length > 120 ? `${s.slice(1, 117)}…` : s.slice(1, -1);
}

/** Counts fault runs killed mid-call against those that finished before their kill point. */
export class KillTally {
  killed = 0;
  finished = 0;

  /** Counts `run` and says how it ended, for the check's name. */
  note(run: CpiRun): string {
    if (run.killed) this.killed++;
    else this.finished++;
    return run.killed
      ? `killed after ${Math.round(run.ms)} ms`
      : `finished before the kill (${Math.round(run.ms)} ms)`;
  }
}
