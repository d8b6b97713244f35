import { randomUUID } from 'node:crypto';
import { type Socket, connect as tcpConnect } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';

export interface NatsTls {
  ca: string;
  certificate: string;
  privateKey: string;
}

interface Subscription {
  subject: string;
  onMessage: (data: string, subject: string) => void;
}

/**
 * A minimal NATS client (text protocol over TLS), enough to talk to an agent as the Director does:
 * the server greets with INFO in plain text, the client upgrades to TLS (client certificate), sends
 * CONNECT and PING, then SUB/PUB; the server sends MSG (and PING, which is answered with PONG).
 */
export class NatsClient {
  private buffer = Buffer.alloc(0);
  private readonly subs = new Map<string, Subscription>();
  private nextSid = 1;
  private pongWaiters: Array<() => void> = [];
  private errors: string[] = [];

  private constructor(private readonly socket: TLSSocket) {}

  static async connect(host: string, port: number, tls: NatsTls, timeoutMs = 10_000): Promise<NatsClient> {
    const raw = tcpConnect({ host, port });
    const info = await readInfoLine(raw, timeoutMs);
    if (!info.tls_required)
      throw new Error(`nats ${host}:${port} does not require TLS: ${JSON.stringify(info)}`);
    const secure = tlsConnect({
      socket: raw,
      ca: tls.ca,
      cert: tls.certificate,
      key: tls.privateKey,
      servername: /^\d+\.\d+\.\d+\.\d+$/.test(host) ? undefined : host,
      host,
    });
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', resolve);
      secure.once('error', reject);
    });
    const client = new NatsClient(secure);
    secure.on('data', (d: Buffer) => client.receive(d));
    secure.on('error', (e) => client.errors.push(e.message));
    client.write(
      `CONNECT ${JSON.stringify({ verbose: false, pedantic: false, tls_required: true, name: 'e2e-director', lang: 'typescript', version: '0.1.0', protocol: 1 })}\r\n`,
    );
    await client.flush(timeoutMs);
    return client;
  }

  /** PING, resolved by the server's PONG: everything sent before has been processed. */
  flush(timeoutMs = 10_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no PONG from nats in ${timeoutMs} ms ${this.errors.join('; ')}`)),
        timeoutMs,
      );
      this.pongWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
      this.write('PING\r\n');
    });
  }

  subscribe(subject: string, onMessage: (data: string, subject: string) => void): string {
    const sid = String(this.nextSid++);
    this.subs.set(sid, { subject, onMessage });
    this.write(`SUB ${subject} ${sid}\r\n`);
    return sid;
  }

  publish(subject: string, data: string, replyTo?: string): void {
    const bytes = Buffer.byteLength(data);
    this.write(`PUB ${subject}${replyTo ? ` ${replyTo}` : ''} ${bytes}\r\n${data}\r\n`);
  }

  close(): void {
    this.socket.destroy();
  }

  private write(text: string): void {
    this.socket.write(text);
  }

  private receive(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const eol = this.buffer.indexOf('\r\n');
      if (eol < 0) return;
      const line = this.buffer.subarray(0, eol).toString('utf8');
      if (line.startsWith('MSG ')) {
        // MSG <subject> <sid> [reply-to] <#bytes>
        const parts = line.split(' ');
        const size = Number(parts.at(-1));
        if (this.buffer.length < eol + 2 + size + 2) return;
        const data = this.buffer.subarray(eol + 2, eol + 2 + size).toString('utf8');
        this.buffer = this.buffer.subarray(eol + 2 + size + 2);
        const sub = this.subs.get(parts[2] ?? '');
        sub?.onMessage(data, parts[1] ?? '');
        continue;
      }
      this.buffer = this.buffer.subarray(eol + 2);
      if (line === 'PING') this.write('PONG\r\n');
      else if (line === 'PONG') this.pongWaiters.shift()?.();
      else if (line.startsWith('-ERR')) this.errors.push(line);
    }
  }
}

function readInfoLine(socket: Socket, timeoutMs: number): Promise<{ tls_required?: boolean }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error('no INFO from nats')), timeoutMs);
    const onData = (d: Buffer) => {
      text += d.toString('utf8');
      const eol = text.indexOf('\r\n');
      if (eol < 0) return;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.pause();
      const line = text.slice(0, eol);
      if (!line.startsWith('INFO ')) return reject(new Error(`nats greeted with ${line.slice(0, 100)}`));
      resolve(JSON.parse(line.slice(5)));
    };
    socket.on('data', onData);
    socket.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

/**
 * Sends one agent method the way the Director does: to `agent.<agent_id>`, reply_to
 * `director.<uuid>.<request id>`, and waits for the answer published there.
 */
export class DirectorNats {
  private readonly directorId = randomUUID();
  private readonly waiting = new Map<string, (reply: unknown) => void>();
  private counter = 0;

  constructor(private readonly nats: NatsClient) {
    nats.subscribe(`director.${this.directorId}.>`, (data, subject) => {
      const resolve = this.waiting.get(subject);
      if (!resolve) return;
      this.waiting.delete(subject);
      try {
        resolve(JSON.parse(data));
      } catch {
        resolve({ exception: { message: `not JSON: ${data.slice(0, 200)}` } });
      }
    });
  }

  async call(agentId: string, method: string, args: unknown[] = [], timeoutMs = 10_000): Promise<unknown> {
    await this.nats.flush();
    const replyTo = `director.${this.directorId}.${++this.counter}`;
    const reply = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(replyTo);
        reject(new Error(`no reply to ${method} from agent.${agentId} in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(replyTo, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
    this.nats.publish(
      `agent.${agentId}`,
      JSON.stringify({ method, arguments: args, reply_to: replyTo }),
      replyTo,
    );
    const answer = (await reply) as { value?: unknown; exception?: { message?: string } };
    if (answer.exception) throw new Error(`agent ${method}: ${answer.exception.message}`);
    return answer.value;
  }
}
