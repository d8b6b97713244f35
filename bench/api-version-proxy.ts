/**
 * For the side-by-side with the Go docker CPI (bench/peer.ts) on Docker 20.10: its attach_disk
 * recreates the container with a per-network MAC address, which its Docker SDK refuses to send
 * below API 1.44, so it cannot attach a disk on this engine at all. This proxy lets it speak 1.44:
 * it forwards connections from `--listen` to the engine's socket byte for byte, rewriting the
 * version in request paths (`/v1.44/` → `/v1.41/`, the same length, so no framing changes); the
 * engine ignores the fields it does not know. One exception: `POST /networks/create` is answered
 * 409 "already exists" without reaching the engine. The Go CPI creates its network on every
 * create_vm and takes "already exists" as success; engines from 25 on refuse a duplicate name
 * themselves, but 20.10 only when asked (CheckDuplicate, which 1.44 clients no longer send), and
 * would make a second network of the same name. bench/peer.ts makes the one network both CPIs use
 * beforehand, so the answer is the one a current engine gives. Measurement aid only: nothing in
 * src/ uses it.
 *
 *   npx tsx bench/api-version-proxy.ts --listen /tmp/peer-144.sock --target /var/tmp/peer/docker.sock
 *   # and in the peer's config: "host": "unix:///tmp/peer-144.sock", "api_version": "1.44"
 */
import { rmSync } from 'node:fs';
import net from 'node:net';

const option = (name: string, fallback?: string) => {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? process.argv[at + 1] : fallback;
  if (value === undefined) throw new Error(`--${name} is required`);
  return value;
};

const listen = option('listen');
const target = option('target');
const from = Buffer.from(`/v${option('from', '1.44')}/`);
const to = Buffer.from(`/v${option('to', '1.41')}/`);
if (from.length !== to.length) throw new Error('--from and --to must have the same length');

/**
 * Rewrites `from` to `to` in a byte stream, also across chunk boundaries: a chunk that ends with
 * the start of `from` keeps those bytes back until the next chunk (or `flush`).
 */
function rewriter() {
  let carry = Buffer.alloc(0);
  return {
    push(chunk: Buffer): Buffer {
      const data = Buffer.concat([carry, chunk]);
      for (let at = data.indexOf(from); at >= 0; at = data.indexOf(from, at + to.length)) to.copy(data, at);
      let keep = 0;
      for (let n = Math.min(from.length - 1, data.length); n > 0 && keep === 0; n--)
        if (data.subarray(data.length - n).equals(from.subarray(0, n))) keep = n;
      carry = Buffer.from(data.subarray(data.length - keep));
      return data.subarray(0, data.length - keep);
    },
    flush(): Buffer {
      const rest = carry;
      carry = Buffer.alloc(0);
      return rest;
    },
  };
}

const NETWORK_CREATE = Buffer.from(`POST ${from}networks/create`);
const ALREADY_EXISTS = (() => {
  const body = JSON.stringify({ message: 'network with name bench already exists' });
  return `HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
})();

/** Consumes one request (head, then Content-Length bytes of body); returns what follows it. */
function swallow(
  state: { head: string; bodyLeft: number | undefined },
  chunk: Buffer,
  done: () => void,
): Buffer {
  let rest = chunk;
  if (state.bodyLeft === undefined) {
    state.head += rest.toString('latin1');
    const end = state.head.indexOf('\r\n\r\n');
    if (end < 0) return Buffer.alloc(0);
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(state.head)?.[1] ?? 0);
    rest = Buffer.from(state.head.slice(end + 4), 'latin1');
    state.bodyLeft = length;
  }
  const taken = Math.min(state.bodyLeft, rest.length);
  state.bodyLeft -= taken;
  rest = rest.subarray(taken);
  if (state.bodyLeft === 0) done();
  return rest;
}

rmSync(listen, { force: true });
const server = net.createServer((client) => {
  const engine = net.connect(target);
  const rewrite = rewriter();
  let flushTimer: NodeJS.Timeout | undefined;
  /** Bytes of a network-create request still to be swallowed (its body), or undefined. */
  let swallowing: { head: string; bodyLeft: number | undefined } | undefined;
  client.on('data', (chunk: Buffer) => {
    if (!swallowing && chunk.subarray(0, NETWORK_CREATE.length).equals(NETWORK_CREATE))
      swallowing = { head: '', bodyLeft: undefined };
    if (swallowing) {
      chunk = swallow(swallowing, chunk, () => {
        swallowing = undefined;
        client.write(ALREADY_EXISTS);
      });
      if (swallowing || chunk.length === 0) return;
    }
    const out = rewrite.push(chunk);
    if (out.length) engine.write(out);
    clearTimeout(flushTimer);
    flushTimer = setTimeout(() => engine.writable && engine.write(rewrite.flush()), 50);
  });
  client.on('end', () => engine.end(rewrite.flush()));
  engine.pipe(client);
  const close = () => {
    clearTimeout(flushTimer);
    client.destroy();
    engine.destroy();
  };
  client.on('error', close);
  engine.on('error', close);
  engine.on('close', close);
  client.on('close', close);
});
server.listen(listen, () => console.log(`api-version proxy: ${listen} -> ${target} (${from} -> ${to})`));
