/**
 * A connection to a unix socket with the part of `net.Socket`'s interface the engine transport
 * uses. On Bun it is Bun's native socket: loading `node:net` (and the stream machinery under it)
 * costs the shipped executable ~2 ms per call, more than the request it carries. On Node it is
 * `net.Socket` itself.
 */
import type * as NodeNet from 'node:net';

// biome-ignore lint/suspicious/noExplicitAny: net.Socket's listener signatures differ per event
type Listener = (...args: any[]) => void;

export interface ByteSocket {
  readonly destroyed: boolean;
  write(data: Buffer | string): boolean;
  on(event: string, listener: Listener): unknown;
  once(event: string, listener: Listener): unknown;
  off(event: string, listener: Listener): unknown;
  pause(): unknown;
  resume(): unknown;
  /** Idle timeout as in net.Socket: 0 turns it off; `onTimeout` becomes a one-time 'timeout' listener. */
  setTimeout(ms: number, onTimeout?: () => void): unknown;
  ref(): unknown;
  unref(): unknown;
  destroy(): unknown;
}

/** The part of a Bun socket used here. */
interface BunSocket {
  write(data: Buffer | string): number;
  pause(): void;
  resume(): void;
  ref(): void;
  unref(): void;
  terminate(): void;
}
interface BunSocketHandlers {
  data(socket: BunSocket, data: Buffer): void;
  drain(socket: BunSocket): void;
  end(socket: BunSocket): void;
  close(socket: BunSocket, error?: Error): void;
  error(socket: BunSocket, error: Error): void;
}
interface BunConnect {
  connect(options: { unix: string; socket: BunSocketHandlers }): Promise<BunSocket>;
}

const bun = (globalThis as { Bun?: BunConnect }).Bun;

/** Connects to `path`; rejects with the errno code (ENOENT, ECONNREFUSED, EACCES) of a failure. */
export function connectUnix(path: string): Promise<ByteSocket> {
  if (bun) return BunUnixSocket.connect(bun, path);
  const net: typeof NodeNet = process.getBuiltinModule('node:net');
  const socket = net.connect(path);
  return new Promise((resolve, reject) => {
    const fail = (e: Error) => {
      socket.destroy();
      reject(e);
    };
    socket.once('error', fail);
    socket.once('connect', () => {
      socket.off('error', fail);
      resolve(socket);
    });
  });
}

class BunUnixSocket implements ByteSocket {
  private socket: BunSocket | undefined;
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly onceWrappers = new Map<Listener, Listener>();
  private unsent: Buffer[] = [];
  private closed = false;
  private idleMs = 0;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  destroyed = false;

  static async connect(runtime: BunConnect, path: string): Promise<ByteSocket> {
    const connection = new BunUnixSocket();
    connection.socket = await runtime.connect({
      unix: path,
      socket: {
        data: (_s, data) => {
          connection.touch();
          connection.emit('data', data);
        },
        drain: () => connection.flush(),
        end: () => connection.emit('end'),
        error: (_s, error) => connection.emit('error', error),
        close: (_s, error) => {
          if (error) connection.emit('error', error);
          // Bun reports the close inside terminate(); net.Socket's 'close' always comes later.
          queueMicrotask(() => connection.closeOnce());
        },
      },
    });
    return connection;
  }

  write(data: Buffer | string): boolean {
    if (this.destroyed || !this.socket) return false;
    this.touch();
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    if (this.unsent.length > 0) {
      this.unsent.push(bytes);
      return false;
    }
    const written = this.socket.write(bytes);
    if (written >= bytes.length) return true;
    this.unsent.push(bytes.subarray(Math.max(written, 0)));
    return false;
  }

  /** Sends what the kernel did not take before; 'drain' once all of it is out. */
  private flush(): void {
    while (this.unsent.length > 0 && this.socket && !this.destroyed) {
      const next = this.unsent[0] as Buffer;
      const written = this.socket.write(next);
      if (written < next.length) {
        this.unsent[0] = next.subarray(Math.max(written, 0));
        return;
      }
      this.unsent.shift();
    }
    if (!this.destroyed) this.emit('drain');
  }

  pause(): void {
    this.socket?.pause();
  }
  resume(): void {
    this.socket?.resume();
  }
  ref(): void {
    this.socket?.ref();
  }
  unref(): void {
    this.socket?.unref();
  }

  setTimeout(ms: number, onTimeout?: () => void): void {
    if (onTimeout) this.once('timeout', onTimeout);
    this.idleMs = ms;
    this.touch();
  }

  /** Restarts the idle timer, as net.Socket does on every read and write. */
  private touch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.idleMs > 0 && !this.destroyed)
      this.idleTimer = setTimeout(() => this.emit('timeout'), this.idleMs);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.unsent = [];
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.socket?.terminate();
    // As net.Socket: 'close' comes after destroy() returned, also if Bun reported it already.
    queueMicrotask(() => this.closeOnce());
  }

  private closeOnce(): void {
    if (this.closed) return;
    this.closed = true;
    this.destroyed = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.emit('close');
  }

  on(event: string, listener: Listener): this {
    const set = this.listeners.get(event) ?? new Set<Listener>();
    this.listeners.set(event, set);
    set.add(listener);
    return this;
  }

  once(event: string, listener: Listener): this {
    const wrapper = ((...args: unknown[]) => {
      this.off(event, listener);
      listener(...args);
    }) as Listener;
    this.onceWrappers.set(listener, wrapper);
    return this.on(event, wrapper);
  }

  off(event: string, listener: Listener): this {
    const set = this.listeners.get(event);
    const wrapper = this.onceWrappers.get(listener);
    if (wrapper && set?.delete(wrapper)) this.onceWrappers.delete(listener);
    else set?.delete(listener);
    return this;
  }

  private emit(event: string, ...args: unknown[]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) (listener as (...a: unknown[]) => void)(...args);
  }
}
