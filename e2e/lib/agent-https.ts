import { request as httpRequest } from 'node:http';
import { request } from 'node:https';

export interface AgentEndpoint {
  /** https://user:password@ip:6868 (the manifest's cloud_provider.mbus) */
  url: string;
  /** PEM of the CA that signed the agent's mbus certificate. */
  ca: string;
}

/**
 * One agent method over the create-env HTTPS mbus (POST /agent), verified against the CA: what
 * `bosh create-env` does, written here so the checks do not depend on the CLI's own output.
 * Long-running methods answer {agent_task_id, state: running}; those are polled with get_task.
 */
export async function agentCall(
  agent: AgentEndpoint,
  method: string,
  args: unknown[] = [],
): Promise<unknown> {
  let value = await post(agent, method, args);
  for (let i = 0; i < 600 && isRunningTask(value); i++) {
    await new Promise((r) => setTimeout(r, 500));
    value = await post(agent, 'get_task', [value.agent_task_id]);
  }
  return value;
}

function isRunningTask(v: unknown): v is { agent_task_id: string } {
  return typeof v === 'object' && v !== null && (v as { state?: unknown }).state === 'running';
}

function post(agent: AgentEndpoint, method: string, args: unknown[]): Promise<unknown> {
  const url = new URL('/agent', agent.url);
  const body = JSON.stringify({ method, arguments: args, reply_to: 'e2e' });
  const auth = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        ca: agent.ca,
        auth,
        timeout: 10_000,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          text += d;
        });
        res.on('end', () => {
          if (res.statusCode !== 200)
            return reject(new Error(`agent ${method}: HTTP ${res.statusCode} ${text}`));
          try {
            const reply = JSON.parse(text) as { value?: unknown; exception?: { message?: string } };
            if (reply.exception) return reject(new Error(`agent ${method}: ${reply.exception.message}`));
            resolve(reply.value);
          } catch {
            reject(new Error(`agent ${method}: not JSON: ${text.slice(0, 200)}`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`agent ${method}: no answer in 10 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * GET over plain HTTP (the test job's status page). busybox httpd answers CGI output with neither a
 * length nor chunking and ends it by closing the connection, which fetch() refuses; node:http reads it.
 */
export function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { timeout: 10_000, insecureHTTPParser: true, headers: { connection: 'close' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => {
          text += d;
        });
        const done = () =>
          res.statusCode === 200 ? resolve(text) : reject(new Error(`GET ${url}: HTTP ${res.statusCode}`));
        res.on('end', done);
        res.on('aborted', done);
        res.on('error', () => (text ? done() : reject(new Error(`GET ${url}: connection reset`))));
      },
    );
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: no answer in 10 s`)));
    req.on('error', reject);
    req.end();
  });
}
