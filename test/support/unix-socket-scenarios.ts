/**
 * Drives connectUnix (src/util/unix-socket.ts) against real unix-socket servers and prints what
 * happened as one JSON line. test/unit/unix-socket.test.ts runs it on Node (net.Socket) and on
 * the Bun binary the build uses (Bun's native socket behind the adapter): both must behave alike.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectUnix } from '../../src/util/unix-socket.ts';

const dir = mkdtempSync(join(tmpdir(), 'unix-socket-scenarios-'));
let serial = 0;

async function serve(onConnection: (socket: Socket) => void): Promise<{ path: string; server: Server }> {
  const path = join(dir, `s${serial++}.sock`);
  const server = createServer(onConnection);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, server };
}

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A large write the kernel cannot take at once: all of it arrives, and 'drain' says when it left. */
async function largeWrite() {
  const payload = Buffer.alloc(8 << 20, 7);
  for (let i = 0; i < payload.length; i += 4096) payload[i] = i & 0xff;
  let arrived!: (data: Buffer) => void;
  const received = new Promise<Buffer>((resolve) => {
    arrived = resolve;
  });
  const { path } = await serve((s) => {
    const chunks: Buffer[] = [];
    let size = 0;
    s.pause(); // the client's writes pile up first
    setTimeout(() => s.resume(), 100);
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      size += c.length;
      if (size >= payload.length) arrived(Buffer.concat(chunks));
    });
  });
  const socket = await connectUnix(path);
  const acceptedAtOnce = socket.write(payload);
  const drained = acceptedAtOnce || (await new Promise<boolean>((r) => socket.once('drain', () => r(true))));
  const data = await Promise.race([received, sleep(10_000).then(() => Buffer.alloc(0))]);
  socket.destroy();
  return { acceptedAtOnce, drained, bytes: data.length, intact: sha(data) === sha(payload) };
}

/** pause() stops 'data' until resume(); nothing is lost or reordered. */
async function pauseResume() {
  const payload = Buffer.alloc(4 << 20);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31) & 0xff;
  const { path } = await serve((s) => s.end(payload));
  const socket = await connectUnix(path);
  const chunks: Buffer[] = [];
  let dataWhilePaused = 0;
  let paused = false;
  let pausedOnce = false;
  await new Promise<void>((resolve) => {
    socket.on('data', (c: Buffer) => {
      if (paused) dataWhilePaused++;
      chunks.push(c); // kept as handed over: a runtime reusing the buffer would show here
      if (!pausedOnce) {
        pausedOnce = true;
        paused = true;
        socket.pause();
        setTimeout(() => {
          paused = false;
          socket.resume();
        }, 100);
      }
    });
    socket.on('close', () => resolve());
  });
  const received = Buffer.concat(chunks);
  return { bytes: received.length, intact: sha(received) === sha(payload), dataWhilePaused };
}

/** An idle timeout fires when nothing moves; 0 turns it off. */
async function idleTimeout() {
  const { path } = await serve(() => {});
  const socket = await connectUnix(path);
  const started = Date.now();
  const firedAfter = await new Promise<number>((resolve) =>
    socket.setTimeout(150, () => resolve(Date.now() - started)),
  );
  let firedAgain = false;
  socket.setTimeout(0);
  socket.on('timeout', () => {
    firedAgain = true;
  });
  await sleep(400);
  socket.destroy();
  return { firedAfter, firedAfterOff: firedAgain };
}

/** destroy(): 'close' once, after destroy() returned; `destroyed` at once. */
async function destroyCloses() {
  const { path } = await serve(() => {});
  const socket = await connectUnix(path);
  let closes = 0;
  let closedBeforeReturn = false;
  socket.on('close', () => closes++);
  socket.destroy();
  closedBeforeReturn = closes > 0;
  const destroyedAtOnce = socket.destroyed;
  socket.destroy();
  await sleep(100);
  return { closes, closedBeforeReturn, destroyedAtOnce, writeAfterDestroy: socket.write('x') };
}

/** The peer's end: 'end', then 'close'. */
async function peerEnds() {
  const { path } = await serve((s) => s.end('bye'));
  const socket = await connectUnix(path);
  const events: string[] = [];
  await new Promise<void>((resolve) => {
    socket.on('data', (c: Buffer) => events.push(`data:${c.toString()}`));
    socket.on('end', () => events.push('end'));
    socket.on('close', () => {
      events.push('close');
      resolve();
    });
  });
  return { events };
}

async function connectFailure() {
  try {
    await connectUnix(join(dir, 'missing.sock'));
    return { code: 'connected' };
  } catch (e) {
    return { code: (e as NodeJS.ErrnoException).code };
  }
}

/** once() listeners run once; off() removes a once() listener before it ran. */
async function onceAndOff() {
  const { path } = await serve((s) => {
    s.write('a');
    setTimeout(() => s.end('b'), 50);
  });
  const socket = await connectUnix(path);
  let onceCalls = 0;
  let removedCalls = 0;
  const removed = () => removedCalls++;
  socket.once('data', () => onceCalls++);
  socket.once('data', removed);
  socket.off('data', removed);
  await new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return { onceCalls, removedCalls };
}

const report = {
  runtime: (globalThis as { Bun?: unknown }).Bun ? 'bun' : 'node',
  largeWrite: await largeWrite(),
  pauseResume: await pauseResume(),
  idleTimeout: await idleTimeout(),
  destroyCloses: await destroyCloses(),
  peerEnds: await peerEnds(),
  connectFailure: await connectFailure(),
  onceAndOff: await onceAndOff(),
};
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(0);
