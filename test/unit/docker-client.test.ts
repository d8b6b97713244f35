import assert from 'node:assert/strict';
import http from 'node:http';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { DockerClient, MIN_API_VERSION } from '../../src/backends/docker/engine/client.ts';
import { listenOnUnixSocket } from '../support/unix-server.ts';

/** An engine on a unix socket that speaks API versions from `minimum` to `current`, and records each request. */
async function fakeEngine(minimum: string, current: string) {
  const seen: string[] = [];
  const number = (v: string) => Number(v.split('.')[1]);
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url}${chunks.length ? ` ${Buffer.concat(chunks).toString()}` : ''}`);
      res.setHeader('api-version', current);
      if (req.url === '/_ping') return res.end('OK');
      const version = /^\/v(\d+\.\d+)\//.exec(req.url ?? '')?.[1] ?? current;
      if (number(version) < number(minimum)) {
        res.statusCode = 400;
        return res.end(
          JSON.stringify({
            message: `client version ${version} is too old. Minimum supported API version is ${minimum}, please upgrade your client to a newer version`,
          }),
        );
      }
      if (req.url?.includes('/missing/')) {
        res.statusCode = 404;
        return res.end(JSON.stringify({ message: 'No such container: missing' }));
      }
      res.setHeader('content-type', 'application/json');
      res.end('[]');
    });
  });
  // The attach endpoint: 101 and a raw stream, or the same 400 for a version below the minimum.
  server.on('upgrade', (req, socket) => {
    seen.push(`UPGRADE ${req.url}`);
    const version = /^\/v(\d+\.\d+)\//.exec(req.url ?? '')?.[1] ?? current;
    if (number(version) < number(minimum)) {
      const body = JSON.stringify({ message: `client version ${version} is too old` });
      socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
      return;
    }
    socket.on('end', () => socket.destroy());
    socket.write('HTTP/1.1 101 UPGRADED\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nhello');
  });
  return { ...(await listenOnUnixSocket(server)), seen };
}

describe('DockerClient API version', () => {
  const closers: Array<() => Promise<void>> = [];
  after(async () => {
    for (const close of closers) await close();
  });

  test('speaks the minimum version without a /_ping first when the engine accepts it', async () => {
    const engine = await fakeEngine('1.12', '1.41');
    closers.push(engine.close);
    const client = new DockerClient(`unix://${engine.socket}`);
    await client.json('GET', '/containers/json', 'Listing', { query: { all: true } });
    await client.call('GET', '/containers/missing/json', 'Inspecting', { accept: [404] });
    client.close();
    assert.deepEqual(engine.seen, [
      `GET /v${MIN_API_VERSION}/containers/json?all=true`,
      `GET /v${MIN_API_VERSION}/containers/missing/json`,
    ]);
  });

  test('an engine that dropped the minimum version: negotiated once, the refused request sent again', async () => {
    const engine = await fakeEngine('1.44', '1.45');
    closers.push(engine.close);
    const client = new DockerClient(`unix://${engine.socket}`);
    await client.json('POST', '/containers/create', 'Creating', { body: { Image: 'x' } });
    await client.json('GET', '/containers/json', 'Listing');
    client.close();
    assert.deepEqual(engine.seen, [
      `POST /v${MIN_API_VERSION}/containers/create {"Image":"x"}`,
      'GET /_ping',
      'POST /v1.45/containers/create {"Image":"x"}',
      'GET /v1.45/containers/json',
    ]);
  });

  test('a streamed body is sent once, with a version the engine confirmed', async () => {
    const engine = await fakeEngine('1.44', '1.45');
    closers.push(engine.close);
    const client = new DockerClient(`unix://${engine.socket}`);
    await client.call('POST', '/images/load', 'Loading', { rawBody: Readable.from([Buffer.from('tar')]) });
    client.close();
    assert.deepEqual(engine.seen, ['GET /_ping', 'POST /v1.45/images/load tar']);
  });

  test('an attachment goes out with the minimum version, and again once negotiated if refused', async () => {
    for (const [minimum, expected] of [
      ['1.12', [`UPGRADE /v${MIN_API_VERSION}/containers/h/attach?stream=1`]],
      [
        '1.44',
        [
          `UPGRADE /v${MIN_API_VERSION}/containers/h/attach?stream=1`,
          'GET /_ping',
          'UPGRADE /v1.45/containers/h/attach?stream=1',
        ],
      ],
    ] as const) {
      const engine = await fakeEngine(minimum, '1.45');
      closers.push(engine.close);
      const client = new DockerClient(`unix://${engine.socket}`);
      const res = await client.upgrade('/containers/h/attach', { stream: 1 });
      assert.equal(res.status, 101);
      assert.ok('head' in res && res.head.toString() === 'hello');
      if ('socket' in res) res.socket.destroy();
      client.close();
      assert.deepEqual(engine.seen, expected);
    }
  });

  test('a pinned version is used as it is, never negotiated', async () => {
    const engine = await fakeEngine('1.44', '1.45');
    closers.push(engine.close);
    const client = new DockerClient(`unix://${engine.socket}`, undefined, '1.43');
    await assert.rejects(
      client.json('GET', '/containers/json', 'Listing'),
      /client version 1\.43 is too old/,
    );
    client.close();
    assert.deepEqual(engine.seen, ['GET /v1.43/containers/json']);
  });
});
