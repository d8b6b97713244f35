import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import fc from 'fast-check';
import { type ResponseHead, ResponseParser } from '../../src/backends/docker/engine/http1.ts';
import { Transport } from '../../src/backends/docker/engine/transport.ts';
import { listenOnUnixSocket } from '../support/unix-server.ts';

/** Feeds `bytes` to a parser in the given pieces; returns what came out. */
function parse(method: string, pieces: Buffer[]) {
  let head: ResponseHead | undefined;
  const body: Buffer[] = [];
  let ended = undefined as boolean | undefined;
  const parser = new ResponseParser(method, {
    head: (h) => (head = h),
    data: (c) => body.push(Buffer.from(c)),
    end: (reusable) => (ended = reusable),
  });
  for (const piece of pieces) parser.push(piece);
  return {
    head,
    get body() {
      return Buffer.concat(body).toString();
    },
    get ended() {
      return ended;
    },
    parser,
  };
}

const split = (text: string, cuts: number[]) => {
  const bytes = Buffer.from(text);
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let from = 0;
  for (const cut of at) {
    pieces.push(bytes.subarray(from, cut));
    from = cut;
  }
  pieces.push(bytes.subarray(from));
  return pieces;
};

describe('HTTP/1.1 response parser', () => {
  const chunked =
    'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nApi-Version: 1.41\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n';
  const sized =
    'HTTP/1.1 404 Not Found\r\nContent-Length: 11\r\nContent-Type: application/json\r\n\r\n{"m":"no"}\n';

  test('chunked and sized bodies, split anywhere, come out whole', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 8 }), (cuts) => {
        const a = parse('GET', split(chunked, cuts));
        assert.equal(a.head?.status, 200);
        assert.equal(a.head?.headers['api-version'], '1.41');
        assert.equal(a.body, 'hello, world');
        assert.equal(a.ended, true);
        const b = parse('GET', split(sized, cuts));
        assert.equal(b.head?.status, 404);
        assert.equal(b.body, '{"m":"no"}\n');
        assert.equal(b.ended, true);
      }),
    );
  });

  test('a body without length ends with the connection, which is then not reused', () => {
    const r = parse('POST', [
      Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\nabc'),
    ]);
    assert.equal(r.ended, undefined);
    r.parser.push(Buffer.from('def'));
    r.parser.close();
    assert.equal(r.body, 'abcdef');
    assert.equal(r.ended, false);
  });

  test('204, 304 and HEAD have no body; 100 Continue is skipped; Connection: close is not reused', () => {
    assert.equal(parse('POST', [Buffer.from('HTTP/1.1 204 No Content\r\n\r\n')]).ended, true);
    assert.equal(parse('POST', [Buffer.from('HTTP/1.1 304 Not Modified\r\n\r\n')]).ended, true);
    assert.equal(parse('HEAD', [Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n')]).ended, true);
    const r = parse('GET', [
      Buffer.from(
        'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok',
      ),
    ]);
    assert.equal(r.head?.status, 200);
    assert.equal(r.body, 'ok');
    assert.equal(r.ended, false);
  });

  test('101 hands over the bytes after the head', () => {
    const r = parse('POST', [
      Buffer.from('HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\n\r\n\x01\x00\x00\x00'),
    ]);
    assert.equal(r.head?.status, 101);
    assert.deepEqual([...r.parser.rest()], [1, 0, 0, 0]);
  });

  test('a connection closed before or inside a response is an error, never a short body', () => {
    assert.throws(
      () => parse('GET', [Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab')]).parser.close(),
      /middle/,
    );
    assert.throws(() => parse('GET', []).parser.close(), /before a response/);
    assert.throws(() => parse('GET', [Buffer.from('SSH-2.0-OpenSSH\r\n\r\n')]), /not an HTTP/);
  });
});

describe('Transport on a socket', () => {
  const closers: Array<() => void> = [];
  after(() => {
    for (const close of closers) close();
  });

  /** An HTTP server on a unix socket counting connections; `handler` answers. */
  async function server(handler: http.RequestListener) {
    const srv = http.createServer(handler);
    let connections = 0;
    srv.on('connection', () => connections++);
    const { socket, close } = await listenOnUnixSocket(srv);
    closers.push(close);
    return { socket, srv, connections: () => connections };
  }

  test('sequential requests share one kept-alive connection; a streamed body arrives whole', async () => {
    const { socket, connections } = await server((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => res.end(`${req.method} ${req.url} ${Buffer.concat(chunks).length}`));
    });
    const t = new Transport(`unix://${socket}`);
    closers.push(() => t.close());
    const a = await t.request({ method: 'GET', path: '/a' });
    const b = await t.request({ method: 'POST', path: '/b', body: Buffer.from('12345') });
    const big = Buffer.alloc(3 << 20, 7);
    const c = await t.request({ method: 'POST', path: '/c', body: Readable.from([big, big]) });
    assert.equal(a.body.toString(), 'GET /a 0');
    assert.equal(b.body.toString(), 'POST /b 5');
    assert.equal(c.body.toString(), `POST /c ${2 * big.length}`);
    assert.equal(connections(), 1);
  });

  test('a kept-alive connection the server closed meanwhile: the request goes out again on a new one', async () => {
    let n = 0;
    const { socket } = await server((req, res) => {
      n++;
      res.end(`answer ${n}`);
      // The server drops the connection right after answering, without saying so.
      if (n === 1) setTimeout(() => req.socket.destroy(), 20);
    });
    const t = new Transport(`unix://${socket}`);
    closers.push(() => t.close());
    assert.equal((await t.request({ method: 'GET', path: '/' })).body.toString(), 'answer 1');
    await new Promise((r) => setTimeout(r, 60));
    assert.equal((await t.request({ method: 'GET', path: '/' })).body.toString(), 'answer 2');
  });

  test('no answer within the timeout is ETIMEDOUT naming the wait; a refused socket names the cause', async () => {
    const { socket } = await server(() => {});
    const t = new Transport(`unix://${socket}`);
    closers.push(() => t.close());
    await assert.rejects(t.request({ method: 'GET', path: '/', timeoutMs: 100 }), { code: 'ETIMEDOUT' });
    const gone = new Transport(`unix://${socket}.missing`);
    await assert.rejects(gone.request({ method: 'GET', path: '/' }), /socket not found/);
  });

  test('open() streams a large body with backpressure and ends it', async () => {
    const part = Buffer.alloc(1 << 20, 1);
    const { socket } = await server((_req, res) => {
      res.setHeader('content-type', 'application/x-tar');
      Readable.from([part, part, part, part]).pipe(res);
    });
    const t = new Transport(`unix://${socket}`);
    closers.push(() => t.close());
    const res = await t.open({ method: 'GET', path: '/images/x/get' });
    let total = 0;
    for await (const chunk of res.body) {
      total += (chunk as Buffer).length;
      await new Promise((r) => setImmediate(r));
    }
    assert.equal(res.status, 200);
    assert.equal(total, 4 * part.length);
  });

  test('upgrade() returns the raw connection after 101, or the status and body of a refusal', async () => {
    const srv = net.createServer((c) => {
      c.once('data', (d) => {
        if (d.toString().startsWith('POST /ok '))
          c.write('HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\n\r\nhi');
        else c.end('HTTP/1.1 404 Not Found\r\nContent-Length: 6\r\n\r\nnope\r\n');
      });
    });
    const { socket, close } = await listenOnUnixSocket(srv);
    closers.push(close);
    const t = new Transport(`unix://${socket}`);
    closers.push(() => t.close());
    const up = await t.upgrade('/ok');
    assert.equal(up.status, 101);
    assert.ok('head' in up && up.head.toString() === 'hi');
    const refused = await t.upgrade('/missing');
    assert.ok('body' in refused && refused.status === 404 && refused.body.toString() === 'nope\r\n');
    t.close();
  });
});
