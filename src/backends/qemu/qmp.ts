import { connect, type Socket } from 'node:net';

/**
 * A minimal QMP client over the VM's unix socket: newline-delimited JSON, a greeting, the
 * capabilities handshake, then commands matched to replies by id. Asynchronous events arrive
 * between replies; they are kept so a caller can wait for one (DEVICE_DELETED, job events).
 * QEMU serves one QMP client at a time, so a session is opened per operation and closed.
 */
export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

export class QmpError extends Error {
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly description: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${description}`);
  }
}

export class QmpConnectionError extends Error {}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (e: Error) => void;
}

type EventWaiter = { match: (e: QmpEvent) => boolean; resolve: (e: QmpEvent) => void };

export class QmpClient {
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly events: QmpEvent[] = [];
  private readonly eventWaiters = new Set<EventWaiter>();
  private closedError: Error | undefined;
  private greeted: ((greeting: unknown) => void) | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('error', (e) => this.fail(new QmpConnectionError(`QMP connection error: ${e.message}`)));
    socket.on('close', () => this.fail(new QmpConnectionError('QMP connection closed by QEMU')));
  }

  /**
   * Connects, reads the greeting and negotiates capabilities. QEMU serves one client at a time
   * and leaves others waiting (or refused while its backlog is full), so this retries until the
   * deadline: another CPI call may be in the middle of a short QMP session with the same VM.
   */
  static async connect(path: string, timeoutMs = 60_000): Promise<QmpClient> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        return await QmpClient.connectOnce(path, deadline);
      } catch (e) {
        const code = (e as { code?: string }).code;
        if ((code !== 'EAGAIN' && code !== 'ECONNREFUSED') || Date.now() > deadline) throw e;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  }

  private static async connectOnce(path: string, deadline: number): Promise<QmpClient> {
    const socket = connect(path);
    const client = new QmpClient(socket);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(new QmpConnectionError(`No QMP greeting on ${path} in time (another client may hold it)`)),
        Math.max(1, deadline - Date.now()),
      );
    });
    try {
      await Promise.race([
        new Promise<void>((resolve, reject) => {
          client.greeted = () => resolve();
          socket.once('error', (e: NodeJS.ErrnoException) =>
            reject(
              Object.assign(new QmpConnectionError(`Cannot connect to QMP socket ${path}: ${e.message}`), {
                code: e.code,
              }),
            ),
          );
        }),
        timeout,
      ]);
      await Promise.race([client.execute('qmp_capabilities'), timeout]);
      return client;
    } catch (e) {
      client.close();
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Runs one command; rejects with QmpError when QEMU answers with an error. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = `cpi-${this.nextId++}`;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (v: unknown) => void, reject });
      this.socket.write(
        `${JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}), id })}\n`,
      );
    });
  }

  /** Resolves with the first event (already received or still to come) that matches; undefined on timeout. */
  waitForEvent(match: (e: QmpEvent) => boolean, timeoutMs: number): Promise<QmpEvent | undefined> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    if (this.closedError) return Promise.reject(this.closedError);
    return new Promise((resolve, reject) => {
      const waiter: EventWaiter = {
        match,
        resolve: (e) => {
          clearTimeout(timer);
          this.eventWaiters.delete(waiter);
          resolve(e);
        },
      };
      const timer = setTimeout(() => {
        this.eventWaiters.delete(waiter);
        resolve(undefined);
      }, timeoutMs);
      this.eventWaiters.add(waiter);
      this.socket.once('close', () => {
        if (!this.eventWaiters.has(waiter)) return;
        clearTimeout(timer);
        this.eventWaiters.delete(waiter);
        reject(this.closedError ?? new QmpConnectionError('QMP connection closed'));
      });
    });
  }

  /** Resolves when QEMU closes the connection (after `quit`), or after the timeout. */
  waitForClose(timeoutMs: number): Promise<boolean> {
    if (this.closedError) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    for (let newline = this.buffer.indexOf('\n'); newline >= 0; newline = this.buffer.indexOf('\n')) {
      const line = this.buffer.slice(0, newline).trim();
      this.buffer = this.buffer.slice(newline + 1);
      if (line) this.handle(line);
    }
  }

  private handle(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    if ('QMP' in message) {
      this.greeted?.(message.QMP);
      return;
    }
    if (typeof message.event === 'string') {
      const event = message as unknown as QmpEvent;
      this.events.push(event);
      for (const waiter of [...this.eventWaiters]) if (waiter.match(event)) waiter.resolve(event);
      return;
    }
    const id = typeof message.id === 'string' ? message.id : undefined;
    const pending = id ? this.pending.get(id) : undefined;
    if (!id || !pending) return;
    this.pending.delete(id);
    if ('error' in message) {
      const error = (message.error ?? {}) as { class?: string; desc?: string };
      pending.reject(
        new QmpError(pending.command, error.class ?? 'GenericError', error.desc ?? 'unknown error'),
      );
    } else {
      pending.resolve(message.return);
    }
  }

  private fail(error: Error): void {
    if (this.closedError) return;
    this.closedError = error;
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
  }
}

/** Opens a session, runs `step`, and always closes the session. */
export async function withQmp<T>(socketPath: string, step: (qmp: QmpClient) => Promise<T>): Promise<T> {
  const qmp = await QmpClient.connect(socketPath);
  try {
    return await step(qmp);
  } finally {
    qmp.close();
  }
}
