/**
 * A connection to a unix socket with the part of `net.Socket`'s interface the engine transport
 * uses. On Bun it is Bun's native socket: loading `node:net` (and the stream machinery under it)
 * costs the shipped executable ~2 ms per call, more than the request it carries. On Node it is
 * `net.Socket` itself.
 */
import type * as NodeNet from 'node:net';
import { type BunRuntime, type BunSocket, bun } from './bun.ts';

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

  static async connect(runtime: BunRuntime, path: string): Promise<ByteSocket> {
    const connection = new BunUnixSocket();
    connection.socket = await runtime.connect({
      unix: path,
      socket: {
        data: (_s, data) => {
          connection.touch();
          connection.emit('data', data);
        },
        drain: () => {
          if (connection.sendUnsent() && !connection.destroyed) connection.emit('drain');
        },
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
    this.unsent.push(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
    return this.sendUnsent();
  }

  /** Writes the queued bytes, in order, as far as the kernel takes them; true once none are left. */
  private sendUnsent(): boolean {
    while (this.unsent.length > 0 && this.socket && !this.destroyed) {
      const next = this.unsent[0] as Buffer;
      const written = this.socket.write(next);
      if (written < next.length) {
        this.unsent[0] = next.subarray(Math.max(written, 0));
        return false;
      }
      this.unsent.shift();
    }
    return this.unsent.length === 0;
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
