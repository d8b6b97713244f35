import assert from 'node:assert/strict';
import http from 'node:http';
import { after, describe, test } from 'node:test';
import { DockerClient } from '../../src/backends/docker/engine/client.ts';
import { Containers } from '../../src/backends/docker/engine/containers.ts';
import { listenOnUnixSocket } from '../support/unix-server.ts';

/**
 * An engine whose first `refusals` starts of 'c' are refused the way containerd refuses a start
 * racing another one; `runningAfter` inspections later the container reports running (never, if
 * undefined), and `laterStarts` answers every later start.
 */
async function racingEngine(runningAfter: number | undefined, laterStarts: number, refusals = 1) {
  const seen: string[] = [];
  let starts = 0;
  let inspections = 0;
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const path = (req.url ?? '').replace(/^\/v\d+\.\d+/, '');
      seen.push(`${req.method} ${path}`);
      res.setHeader('content-type', 'application/json');
      if (path === '/containers/c/start') {
        starts++;
        res.statusCode = starts <= refusals ? 500 : laterStarts;
        return res.end(
          starts <= refusals ? JSON.stringify({ message: `task ${'f'.repeat(64)}: already exists` }) : '',
        );
      }
      if (path === '/containers/c/json') {
        inspections++;
        const running = runningAfter !== undefined && inspections >= runningAfter;
        return res.end(
          JSON.stringify({ Id: 'c', State: { Status: running ? 'running' : 'exited', Running: running } }),
        );
      }
      res.statusCode = 404;
      res.end(JSON.stringify({ message: 'not found' }));
    });
  });
  return { ...(await listenOnUnixSocket(server)), seen };
}

describe('starting a container that another start is racing', () => {
  const closers: Array<() => Promise<void>> = [];
  after(async () => {
    for (const close of closers) await close();
  });

  test('"task already exists" waits for the other start and succeeds once the container runs', async () => {
    const engine = await racingEngine(3, 204);
    closers.push(engine.close);
    const client = new DockerClient(`unix://${engine.socket}`);
    await new Containers(client).start('c');
    client.close();
    assert.deepEqual(engine.seen, [
      'POST /containers/c/start',
      'GET /containers/c/json',
      'GET /containers/c/json',
      'GET /containers/c/json',
    ]);
  });

  test('when the other start never brings it up, it is started once more', async () => {
    const engine = await racingEngine(undefined, 204);
    closers.push(engine.close);
    const client = new DockerClient(`unix://${engine.socket}`);
    await new Containers(client).start('c', 250);
    client.close();
    assert.equal(engine.seen.filter((s) => s.endsWith('/start')).length, 2);
  });

  test('refused again and again (the refused starts undo each other): it keeps trying until one gets through', async () => {
    const engine = await racingEngine(undefined, 204, 3);
    closers.push(engine.close);
    const client = new DockerClient(`unix://${engine.socket}`);
    await new Containers(client).start('c', 30_000, 200);
    client.close();
    assert.equal(engine.seen.filter((s) => s.endsWith('/start')).length, 4);
  });

  test('still refused as racing when the time is up: the error names the container', async () => {
    const engine = await racingEngine(undefined, 204, 1000);
    closers.push(engine.close);
    const client = new DockerClient(`unix://${engine.socket}`);
    await assert.rejects(new Containers(client).start('c', 300), /Starting container 'c'.*already exists/);
    client.close();
  });

  test("a refusal for another reason is the caller's error, naming the container", async () => {
    const engine = await racingEngine(undefined, 500);
    closers.push(engine.close);
    const client = new DockerClient(`unix://${engine.socket}`);
    await assert.rejects(new Containers(client).start('c', 150), /Starting container 'c'.*HTTP 500/);
    client.close();
  });
});
