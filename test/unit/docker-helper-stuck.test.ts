import assert from 'node:assert/strict';
import http from 'node:http';
import { after, test } from 'node:test';
import { DockerClient } from '../../src/backends/docker/engine/client.ts';
import { HELPER_CONTAINER, HostHelper } from '../../src/backends/docker/helper.ts';
import { Logger } from '../../src/log/logger.ts';
import { Redactor } from '../../src/log/redact.ts';
import { listenOnUnixSocket } from '../support/unix-server.ts';

/**
 * An engine after a restart that left containerd holding a task of the helper container 'old':
 * every start of 'old' is refused with "task …: already exists"; a helper made anew starts.
 */
async function engineWithStuckHelper() {
  const seen: string[] = [];
  let helper: { Id: string; running: boolean } | undefined = { Id: 'old', running: false };
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const url = (req.url ?? '').replace(/^\/v\d+\.\d+/, '');
      const path = url.split('?')[0] as string;
      seen.push(`${req.method} ${path}`);
      res.setHeader('content-type', 'application/json');
      const send = (status: number, body: unknown = '') => {
        res.statusCode = status;
        res.end(typeof body === 'string' ? body : JSON.stringify(body));
      };
      if (path.startsWith('/images/')) return send(200, { Id: 'sha256:helper' });
      if (path === '/containers/json') return send(200, []);
      if (path === `/containers/${HELPER_CONTAINER}/json`)
        return helper
          ? send(200, {
              Id: helper.Id,
              Names: [`/${HELPER_CONTAINER}`],
              State: { Status: helper.running ? 'running' : 'exited', Running: helper.running },
            })
          : send(404, { message: 'no such container' });
      if (path === '/containers/create') {
        if (helper) return send(409, { message: 'name in use' });
        helper = { Id: 'new', running: false };
        return send(201, { Id: 'new' });
      }
      if (path === `/containers/${HELPER_CONTAINER}/start`) {
        if (!helper) return send(404, { message: 'no such container' });
        if (helper.Id === 'old') return send(500, { message: `task ${'a'.repeat(64)}: already exists` });
        helper.running = true;
        return send(204);
      }
      if (req.method === 'DELETE' && path === '/containers/old') {
        if (helper?.Id === 'old') helper = undefined;
        return send(204);
      }
      send(404, { message: `unexpected ${req.method} ${url}` });
    });
  });
  return { ...(await listenOnUnixSocket(server)), seen, helper: () => helper };
}

const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers) await close();
});

test('a helper the engine keeps refusing to start ("task already exists") is removed by its ID and made anew', async () => {
  const engine = await engineWithStuckHelper();
  closers.push(engine.close);
  const lines: string[] = [];
  const logger = new Logger('req', new Redactor(), (line) => lines.push(line));
  const docker = new DockerClient(`unix://${engine.socket}`);
  await new HostHelper(docker, '/var/lib/x', 'bosh-cpi-helper:1', logger, 300).ensure();
  docker.close();
  assert.deepEqual(engine.helper(), { Id: 'new', running: true });
  assert.ok(engine.seen.includes('DELETE /containers/old'), engine.seen.join('\n'));
  assert.ok(!engine.seen.includes(`DELETE /containers/${HELPER_CONTAINER}`), 'removed by name');
  assert.ok(
    lines.some((l) => /keeps refusing to start the helper.*making it anew/.test(l)),
    lines.join('\n'),
  );
});
