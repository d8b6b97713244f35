export interface CommandResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface CommandOptions {
  /** Kills the command (SIGKILL) after this many milliseconds. */
  timeoutMs?: number;
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  /** Called with each chunk of stderr as it arrives; return true to kill the command at once. */
  onStderr?: (chunk: string) => boolean | undefined;
}

/** A command that could not run or exited non-zero; the message carries its stderr. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly result: CommandResult | undefined,
    message: string,
  ) {
    super(message);
  }
}

const MAX_CAPTURE = 1 << 20;

function describeCommand(cmd: string, args: readonly string[]): string {
  return [cmd, ...args].map((a) => (/^[\w./=:,@+-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}

/** Runs a command without a shell; never throws for a non-zero exit (see `runChecked`). */
export function run(cmd: string, args: readonly string[], opts: CommandOptions = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = process.getBuiltinModule('node:child_process').spawn(cmd, args, {
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: opts.env ?? process.env,
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    child.stdout?.on('data', (c: Buffer) => {
      if (stdout.length < MAX_CAPTURE) stdout += c.toString('utf8');
    });
    child.stderr?.on('data', (c: Buffer) => {
      const text = c.toString('utf8');
      if (stderr.length < MAX_CAPTURE) stderr += text;
      if (opts.onStderr?.(text)) child.kill('SIGKILL');
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new CommandError(cmd, undefined, `Cannot run ${cmd}: ${e.message}`));
    });
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      resolve({ exitCode, signal, stdout, stderr, timedOut });
    });
  });
}

/** Runs a command and throws a CommandError unless it exits 0 (or one of `okExitCodes`). */
export async function runChecked(
  cmd: string,
  args: readonly string[],
  opts: CommandOptions & { okExitCodes?: number[] } = {},
): Promise<CommandResult> {
  const result = await run(cmd, args, opts);
  const ok = opts.okExitCodes ?? [0];
  if (result.exitCode !== null && ok.includes(result.exitCode) && !result.timedOut) return result;
  const how = result.timedOut
    ? `timed out after ${opts.timeoutMs} ms`
    : result.signal
      ? `was killed by ${result.signal}`
      : `exited with ${result.exitCode}`;
  const detail = result.stderr.trim() || result.stdout.trim();
  throw new CommandError(
    cmd,
    result,
    `\`${describeCommand(cmd, args)}\` ${how}${detail ? `: ${detail.slice(0, 2000)}` : ''}`,
  );
}
