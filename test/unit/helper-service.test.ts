import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DockerApiError, DockerClient } from '../../src/backends/docker/engine/client.ts';
import {
  encodeWord,
  HelperConnection,
  MAX_REQUEST_BYTES,
  scriptHash,
} from '../../src/backends/docker/helper-service.ts';

/** Decodes words the way the helper service does (sh's printf %b), each word split off by spaces. */
function decodeInSh(line: string): string[] {
  const script = `
set -f; set -- $1; set +f
for a in "$@"; do
  case $a in *\\\\*) a=$(printf '%b.' "$a"); a=\${a%.};; esac
  printf '%s\\0' "$a"
done`;
  const run = spawnSync('/bin/sh', ['-c', script, 'sh', line], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout.split('\0').slice(0, -1);
}

describe('helper service request words', () => {
  test('every value comes back byte for byte from the shell, one word each', () => {
    const values = [
      'create-disk',
      '/var/lib/bosh docker cpi',
      'disk-5954e944-9ed7-4cc3-9162-3b5166b8027f',
      JSON.stringify({ cpi: { name: 'it\'s "quoted" \\ back\\slash', env: '$HOME `id` $(id)' }, bosh: {} }),
      'tab\there, newline\nthere, trailing newline\n',
      'ünïcødé ✓',
      '',
      '*',
      '-n',
    ];
    const line = values.map(encodeWord).join(' ');
    assert.doesNotMatch(line, /[\s]{2}|\n|\t/, 'a line of single-space separated words');
    assert.deepEqual(decodeInSh(line), values);
  });

  test('words hold only characters the shell leaves alone', () => {
    assert.match(encodeWord('a b;c|d&e$f`g"h\'i<j>k(l)m{n}o[p]q?r*s~t#u!v%w^'), /^[A-Za-z0-9._,:/=@+\\-]+$/);
  });

  test('script hashes are 16 hex digits and change with the script', () => {
    assert.match(scriptHash('echo a'), /^[0-9a-f]{16}$/);
    assert.notEqual(scriptHash('echo a'), scriptHash('echo b'));
    assert.ok(MAX_REQUEST_BYTES < 4096, 'one pipe write (PIPE_BUF) per request');
  });
});

/**
 * An engine whose attach endpoint answers each request line with `reply(id, words)`, in stdout
 * frames, and whose inspect endpoint says the helper is `status` (404 when null).
 */
async function fakeAttach(
  reply: (id: string, words: string[], socket: Socket) => void,
  status: string | null = 'running',
) {
  const path = join(mkdtempSync(join(tmpdir(), 'fake-attach-')), 'docker.sock');
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    let head = '';
    let upgraded = false;
    socket.on('data', (chunk: Buffer) => {
      if (!upgraded) {
        head += chunk.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        if (head.startsWith('GET /v1.41/containers/helper/json ')) {
          head = '';
          const body = status
            ? JSON.stringify({ State: { Status: status, Running: status === 'running' } })
            : '{}';
          socket.write(
            `HTTP/1.1 ${status ? '200 OK' : '404 Not Found'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
          );
          return;
        }
        upgraded = true;
        assert.match(
          head,
          /^POST \/v1\.41\/containers\/helper\/attach\?stream=1&stdin=1&stdout=1&stderr=0 HTTP\/1\.1\r\n/,
        );
        socket.write(
          'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n\r\n',
        );
        return;
      }
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
        const [id = '', ...words] = line.split(' ');
        reply(id, words, socket);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    close: () => {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** Helper states the engine reports for a helper that does not run, and the refusal each gives. */
const NOT_RUNNING = [
  ['exited', 409],
  [null, 404],
] as const;

const frame = (text: string) => {
  const header = Buffer.alloc(8);
  header[0] = 1;
  header.writeUInt32BE(Buffer.byteLength(text), 4);
  return Buffer.concat([header, Buffer.from(text)]);
};

describe('helper service connection', () => {
  test('answers are matched to requests by id, others ignored, split frames and lines reassembled', async () => {
    const engine = await fakeAttach((id, words, socket) => {
      const answer = `someone-else o noise\n${id} o got ${words.join(' ')}\n${id} e warning text\n${id} x 3\n`;
      const bytes = Buffer.concat([frame(answer.slice(0, 7)), frame(answer.slice(7))]);
      socket.write(bytes.subarray(0, 5));
      setTimeout(() => socket.write(bytes.subarray(5)), 5);
    });
    const docker = new DockerClient(`unix://${engine.path}`, undefined, '1.41');
    const connection = await HelperConnection.open(docker, 'helper');
    // One after the other: this fake writes each answer in two parts, which must not interleave.
    const a = await connection.run(['h', 'op-a'], 5000);
    const b = await connection.run(['h', 'op-b'], 5000);
    assert.deepEqual(a, { exitCode: 3, stdout: 'got h op-a\n', stderr: 'warning text\n' });
    assert.equal(b.stdout, 'got h op-b\n');
    docker.close();
    engine.close();
  });

  test('a connection the engine closes fails the pending request and every later one at once', async () => {
    const engine = await fakeAttach((_id, _words, socket) => socket.end());
    const docker = new DockerClient(`unix://${engine.path}`, undefined, '1.41');
    const connection = await HelperConnection.open(docker, 'helper');
    await assert.rejects(connection.run(['h', 'op'], 60_000), /connection to the helper closed/);
    await assert.rejects(connection.run(['h', 'op'], 60_000), /connection to the helper closed/);
    docker.close();
    engine.close();
  });

  test('a stopped or missing helper is refused at once (the engine would attach and never answer)', async () => {
    for (const [status, code] of NOT_RUNNING) {
      const engine = await fakeAttach(() => {}, status);
      const docker = new DockerClient(`unix://${engine.path}`, undefined, '1.41');
      const started = Date.now();
      await assert.rejects(HelperConnection.open(docker, 'helper'), (e: unknown) => {
        assert.ok(e instanceof DockerApiError, String(e));
        assert.equal(e.status, code);
        return true;
      });
      assert.ok(Date.now() - started < 5000);
      docker.close();
      engine.close();
    }
  });
});

test('an attachment that fails while the helper state is still being read is an error, not a crash', async () => {
  const path = join(mkdtempSync(join(tmpdir(), 'fake-attach-')), 'docker.sock');
  const server = createServer((socket) => {
    socket.once('data', (chunk: Buffer) => {
      if (chunk.toString('latin1').startsWith('GET ')) {
        // The state answers late; the attachment has failed by then.
        const body = JSON.stringify({ State: { Status: 'running', Running: true } });
        setTimeout(
          () =>
            socket.write(
              `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
            ),
          200,
        );
      } else socket.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  const docker = new DockerClient(`unix://${path}`, undefined, '1.41');
  try {
    await assert.rejects(HelperConnection.open(docker, 'helper'));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
    docker.close();
    server.close();
  }
});

describe('helper service connection opened without reading the helper state', () => {
  /** The fake engine, counting inspect requests and the request lines that reached it. */
  async function countingEngine(status: string | null, reply: (id: string, socket: Socket) => void) {
    const seen = { inspects: 0, lines: [] as string[] };
    const engine = await fakeAttach((id, words, socket) => {
      seen.lines.push(words.join(' '));
      reply(id, socket);
    }, status);
    const docker = new DockerClient(`unix://${engine.path}`, undefined, '1.41');
    const inspect = docker.inspect.bind(docker);
    docker.inspect = ((...args: Parameters<typeof inspect>) => {
      seen.inspects++;
      return inspect(...args);
    }) as typeof docker.inspect;
    return {
      seen,
      docker,
      close: () => {
        docker.close();
        engine.close();
      },
    };
  }

  const refusedWith = (code: number) => (e: unknown) => {
    assert.ok(e instanceof DockerApiError, String(e));
    assert.equal(e.status, code);
    return true;
  };

  test('a lookup a running helper answers costs no state request; a host operation after it none either', async () => {
    const engine = await countingEngine('running', (id, socket) =>
      socket.write(frame(`${id} o file\n${id} x 0\n`)),
    );
    const connection = await HelperConnection.open(engine.docker, 'helper', { checkState: false });
    const look = await connection.run(['look', '/d/disks/x.img'], 5000, { repeatable: true });
    assert.equal(look.stdout, 'file\n');
    await connection.run(['h', 'delete-disk'], 5000);
    assert.equal(engine.seen.inspects, 0);
    engine.close();
  });

  test('a lookup a stopped helper never answers is refused once its state is read, not at the timeout', async () => {
    for (const [status, code] of NOT_RUNNING) {
      const engine = await countingEngine(status, () => {});
      const connection = await HelperConnection.open(engine.docker, 'helper', { checkState: false });
      const started = Date.now();
      await assert.rejects(connection.run(['look', '/d'], 60_000, { repeatable: true }), refusedWith(code));
      assert.ok(Date.now() - started < 5000);
      assert.equal(engine.seen.inspects, 1);
      engine.close();
    }
  });

  test('a host operation is not written to a helper whose state is not known to be running', async () => {
    const engine = await countingEngine('exited', (id, socket) => socket.write(frame(`${id} x 0\n`)));
    const connection = await HelperConnection.open(engine.docker, 'helper', { checkState: false });
    await assert.rejects(connection.run(['h', 'delete-disk', 'disk-1'], 60_000), refusedWith(409));
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(engine.seen.lines, [], 'nothing reached the helper');
    engine.close();
  });

  test('an attachment ended before any answer is refused by the helper state when it is not running', async () => {
    const engine = await countingEngine('exited', (_id, socket) => socket.end());
    const connection = await HelperConnection.open(engine.docker, 'helper', { checkState: false });
    await assert.rejects(connection.run(['look', '/d'], 60_000, { repeatable: true }), refusedWith(409));
    engine.close();
  });
});
