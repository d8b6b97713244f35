import { randomHex, sha256Hex } from '../../util/random.ts';
import type { ByteSocket } from '../../util/unix-socket.ts';
import { apiError, DockerApiError, type DockerClient } from './engine/client.ts';
import { Containers } from './engine/containers.ts';
import { StreamDemuxer } from './engine/exec.ts';
import { TransportError } from './engine/transport.ts';

/**
 * Sets pid to the helper's containerd-shim, the nearest ancestor that lives in this engine's host
 * mount namespace (walking up from the shell through /proc/<pid>/stat).
 */
export const FIND_ENGINE_SHIM = `pid=""
p=$$
while [ -n "$p" ] && [ "$p" -gt 1 ]; do
  read -r c 2>/dev/null < "/proc/$p/comm" || break
  case "$c" in containerd-shim*) pid=$p; break;; esac
  read -r _ _ _ p _ 2>/dev/null < "/proc/$p/stat" || break
done
`;

/** The longest file text a lookup gives (see HELPER_SERVICE): its answer stays one pipe write. */
export const LOOK_TEXT_BYTES = 3000;

/**
 * The helper's main process: a shell serving host operations read from its stdin, one request a
 * line, each run in the background so that slow operations do not hold up others. A CPI attaches
 * to the helper (POST /containers/{id}/attach, one round trip) and writes a line; the answer comes
 * back on the attached stdout: no exec to create, start and inspect per operation, no runc exec.
 *
 *   request:  <id> <script hash> <operation> <data_dir> <args…>    (words; see encodeWord)
 *   answer:   <id> o <stdout line> … <id> e <stderr line> … <id> x <exit code>
 *   lookups:  <id> look <host path>  →  <id> o file | <id> o dir, then <id> x 0; else <id> x 1
 *             <id> read <host path>  →  <id> o text <the file's text>, <id> x 0; else <id> x 1
 *
 * Lookups are answered by the loop itself, without starting a process (each costs milliseconds:
 * a fork, nsenter, sh and the script's parse), from the host's root as bound at /host. That view
 * can miss what the host sees (a path through an absolute symlink resolves inside the helper), so
 * only what it finds is an answer: `x 1` means "not seen here", and the caller asks the host
 * through an operation. `read` gives a file's text only when it is one unterminated line of at
 * most LOOK_TEXT_BYTES bytes (sh reads byte by byte: only for small text files).
 *
 * Every attached client sees every answer and keeps those with its own ids. Requests name the
 * host script by its hash: the CPI puts the script into the helper once (an exec writing
 * /tmp/bosh-cpi-scripts/<hash>, then <hash>.ok, so a script is read only once complete; see
 * HostHelper.installScript), so a helper serves every CPI version; an unknown hash is answered
 * with exit code 254. The host's mount namespace is entered through the helper's containerd-shim
 * (its parent), found once at start.
 */
export const HELPER_SERVICE = `
${FIND_ENGINE_SHIM}[ -n "$pid" ] || { echo "cannot find this engine's containerd-shim among the host's processes" >&2; exit 90; }
mkdir -p /tmp/bosh-cpi-scripts /tmp/bosh-cpi-run
trap 'exit 0' TERM INT
while IFS= read -r line; do
  set -f; set -- $line; set +f
  [ $# -ge 3 ] || continue
  id=$1
  case $id in *[!0-9a-f]*) continue;; esac
  case $2 in look | read)
    p=/host$3; t=
    case $p in *\\\\*) ;; *)
      if [ "$2" = look ]; then
        if [ -d "$p" ]; then t=dir; elif [ -f "$p" ]; then t=file; fi
      elif [ -f "$p" ] && [ -r "$p" ] && m= && ! IFS= read -r m < "$p" && [ \${#m} -le ${LOOK_TEXT_BYTES} ]; then
        t="text $m"
      fi;;
    esac
    if [ -n "$t" ]; then printf '%s o %s\\n%s x 0\\n' "$id" "$t" "$id"; else printf '%s x 1\\n' "$id"; fi
    continue;;
  esac
  hash=$2; shift 2
  case $hash in *[!0-9a-f]*) continue;; esac
  eval "s=\\\${script_$hash-}"
  if [ -z "$s" ] && [ -e "/tmp/bosh-cpi-scripts/$hash.ok" ]; then
    s=$(cat "/tmp/bosh-cpi-scripts/$hash"); eval "script_$hash=\\$s"
  fi
  if [ -z "$s" ]; then printf '%s x 254\\n' "$id"; continue; fi
  (
    exec </dev/null
    n=$#
    while [ "$n" -gt 0 ]; do
      a=$1; shift
      case $a in *\\\\*) a=$(printf '%b.' "$a"); a=\${a%.};; esac
      set -- "$@" "$a"; n=$((n - 1))
    done
    f=/tmp/bosh-cpi-run/$id
    rc=0
    nsenter -t "$pid" -m -- /bin/sh -c "$s" bosh-cpi-host "$@" > "$f.o" 2> "$f.e" || rc=$?
    while IFS= read -r l || [ -n "$l" ]; do printf '%s o %s\\n' "$id" "$l"; done < "$f.o"
    while IFS= read -r l || [ -n "$l" ]; do printf '%s e %s\\n' "$id" "$l"; done < "$f.e"
    printf '%s x %s\\n' "$id" "$rc"
    rm -f "$f.o" "$f.e"
  ) &
done
`;

/** Requests longer than this go through exec instead: a pipe write of at most PIPE_BUF bytes is never interleaved. */
export const MAX_REQUEST_BYTES = 3500;

/** Whether a request of these words goes to the service as one line (else through exec, or not at all). */
export const fitsOneRequest = (words: string[]): boolean => words.join(' ').length <= MAX_REQUEST_BYTES;

/** Exit code of a request naming a script the helper does not have yet. */
export const UNKNOWN_SCRIPT = 254;

export const scriptHash = (script: string): string => sha256Hex(script).slice(0, 16);

/** One word of a request line: bytes other than [A-Za-z0-9._,:/=@+-] as \0NNN (printf %b decodes them). */
export function encodeWord(value: string): string {
  if (value === '') return '\\c'; // printf %b: no output
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9._,:/=@+-]/.test(c) ? c : `\\0${byte.toString(8).padStart(3, '0')}`;
  }
  return out;
}

export interface ServiceResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

interface Pending {
  out: string[];
  err: string[];
  resolve: (r: ServiceResult) => void;
  reject: (e: Error) => void;
}

const closeUpgrade = (res: { socket: ByteSocket } | object) => {
  if ('socket' in res) res.socket.destroy();
};

/** How long a repeatable request waits for its answer before the helper's state is read. */
export const STATE_PROBE_MS = 25;

/** The helper's state as the engine gives it: resolves when it runs, else a 404 or 409 DockerApiError. */
async function requireRunningHelper(docker: DockerClient, container: string): Promise<void> {
  const helper = await new Containers(docker).inspect(container);
  if (!helper?.State.Running)
    throw new DockerApiError(
      helper ? 409 : 404,
      helper ? `the helper is ${helper.State.Status}` : 'no such container',
      'Attaching to the host helper',
    );
}

/**
 * A CPI process's attachment to the helper service: many requests, concurrent or not, on one connection.
 *
 * The engine lets a client attach to a *stopped* container and then never answers, so what is
 * written must be known to reach a running helper. A request that must not run twice (a host
 * operation) waits for the helper's state before it is written, unless an answer came already.
 * One that may (a lookup) is written at once, and the state is read only if no answer comes
 * within STATE_PROBE_MS: a running helper answers in about a millisecond, and one request fewer
 * is ~1 ms of has_disk. A line written to a stopped helper can still reach it once it is started
 * again; only a lookup takes that chance.
 */
export class HelperConnection {
  private readonly pending = new Map<string, Pending>();
  private readonly prefix = randomHex(6);
  private counter = 0;
  private buffered = '';
  private readonly demux = new StreamDemuxer();
  private closed = false;
  /** Whether the helper is known to run: its state said so, or it answered on this connection. */
  private running = false;
  private stateCheck: Promise<void> | undefined;

  private constructor(
    private readonly socket: ByteSocket,
    private readonly endpoint: string,
    private readonly readState: () => Promise<void>,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => this.lost());
    socket.on('close', () => this.lost());
    socket.on('error', () => {});
  }

  /**
   * Attaches to the helper container. With `checkState` the helper's state is read alongside the
   * attachment and a helper that is missing (404) or not running (409) is refused here, for the
   * caller to start it; without, that happens when a request needs it (see the class).
   */
  static async open(
    docker: DockerClient,
    container: string,
    { checkState = true }: { checkState?: boolean } = {},
  ): Promise<HelperConnection> {
    const attaching = docker.upgrade(`/containers/${container}/attach`, {
      stream: 1,
      stdin: 1,
      stdout: 1,
      stderr: 0,
    });
    // Handled below once the state is known; until then a failed attachment (engine going away)
    // must not count as an unhandled rejection, which ends the process without a response.
    attaching.catch(() => {});
    const readState = () => requireRunningHelper(docker, container);
    if (checkState)
      await readState().catch((e: unknown) => {
        attaching.then(closeUpgrade, () => {});
        throw e;
      });
    const res = await attaching;
    if (res.status !== 101 || !('socket' in res))
      throw apiError(res.status, 'body' in res ? res.body : Buffer.alloc(0), 'Attaching to the host helper');
    const connection = new HelperConnection(res.socket, docker.endpoint, readState);
    connection.running = checkState;
    if (res.head.length) connection.receive(res.head);
    return connection;
  }

  /**
   * The helper's state, read once per connection. A helper that does not run fails every pending
   * request with the state's error (the caller starts it and asks again) and closes the connection.
   */
  private ensureRunning(): Promise<void> {
    this.stateCheck ??= this.readState().then(
      () => {
        this.running = true;
      },
      (e: unknown) => {
        const error = e instanceof Error ? e : new Error(String(e));
        this.failAll(error);
        this.socket.destroy();
        throw error;
      },
    );
    return this.stateCheck;
  }

  /** Sends one request; `repeatable` when running it twice does no harm (see the class). */
  async run(words: string[], timeoutMs: number, { repeatable = false } = {}): Promise<ServiceResult> {
    if (!repeatable && !this.running) await this.ensureRunning();
    if (this.closed) throw new TransportError(this.endpoint, 'EPIPE', 'the connection to the helper closed');
    const id = `${this.prefix}${(this.counter++).toString(16).padStart(4, '0')}`;
    const line = `${[id, ...words].join(' ')}\n`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new TransportError(
            this.endpoint,
            'ETIMEDOUT',
            `no answer from the host helper within ${timeoutMs / 1000} s`,
          ),
        );
      }, timeoutMs);
      // A refusal fails this request through failAll; a helper that runs leaves it waiting.
      const probe = this.running
        ? undefined
        : setTimeout(() => this.ensureRunning().catch(() => {}), STATE_PROBE_MS);
      const settle = () => {
        clearTimeout(timer);
        clearTimeout(probe);
      };
      this.pending.set(id, {
        out: [],
        err: [],
        resolve: (r) => {
          settle();
          resolve(r);
        },
        reject: (e) => {
          settle();
          reject(e);
        },
      });
      this.socket.write(line);
    });
  }

  get idle(): boolean {
    return this.pending.size === 0;
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    this.demux.push(chunk);
    if (this.demux.stdout.length === 0) return;
    this.buffered += Buffer.concat(this.demux.stdout.splice(0)).toString('utf8');
    this.demux.stderr.splice(0);
    let newline = this.buffered.indexOf('\n');
    while (newline >= 0) {
      this.answer(this.buffered.slice(0, newline));
      this.buffered = this.buffered.slice(newline + 1);
      newline = this.buffered.indexOf('\n');
    }
  }

  private answer(line: string): void {
    this.running = true; // only a running service writes lines
    const first = line.indexOf(' ');
    const request = this.pending.get(line.slice(0, first));
    if (!request) return; // another CPI process's answer
    const kind = line.slice(first + 1, first + 2);
    const text = line.slice(first + 3);
    if (kind === 'o') request.out.push(text);
    else if (kind === 'e') request.err.push(text);
    else if (kind === 'x') {
      this.pending.delete(line.slice(0, first));
      request.resolve({
        exitCode: Number(text),
        stdout: request.out.map((l) => `${l}\n`).join(''),
        stderr: request.err.map((l) => `${l}\n`).join(''),
      });
    }
  }

  /**
   * The engine ended the attachment. Before any answer that may be the engine's way of refusing
   * a helper that does not run: its state then says so, for the caller to start it.
   */
  private lost(): void {
    if (this.closed) return;
    this.closed = true;
    const reason = 'the connection to the helper closed';
    if (this.running || this.pending.size === 0) this.failAll(reason);
    else
      this.ensureRunning().then(
        () => this.failAll(reason),
        () => {},
      );
  }

  private failAll(reason: string | Error): void {
    this.closed = true;
    for (const [id, request] of this.pending) {
      this.pending.delete(id);
      request.reject(
        typeof reason === 'string' ? new TransportError(this.endpoint, 'EPIPE', reason) : reason,
      );
    }
  }
}
