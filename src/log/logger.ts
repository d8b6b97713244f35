import { writeStderrLine } from '../util/process-io.ts';
import type { Redactor } from './redact.ts';

const MAX_LOG_FIELD_BYTES = 64 * 1024;

export type Level = 'DEBUG' | 'INFO' | 'WARN' | 'ERROR';

/**
 * Human-readable lines on stderr, tagged with the request id and method; the same lines are
 * kept (bounded) for the response's `log` field. Every line is redacted first.
 */
export class Logger {
  private readonly lines: string[] = [];
  private bytes = 0;
  private dropped = 0;
  method = '-';

  constructor(
    private readonly requestId: string,
    private readonly redactor: Redactor,
    private readonly sink: (line: string) => void = writeStderrLine,
  ) {}

  debug(message: string): void {
    this.write('DEBUG', message);
  }
  info(message: string): void {
    this.write('INFO', message);
  }
  warn(message: string): void {
    this.write('WARN', message);
  }
  error(message: string): void {
    this.write('ERROR', message);
  }

  /** Runs `step`, logging its wall time. */
  async timed<T>(what: string, step: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await step();
    } finally {
      this.debug(`${what} took ${Math.round(performance.now() - started)} ms`);
    }
  }

  /** Stderr only: detail such as stack traces is for the operator, not for the response's `log`. */
  trace(message: string): void {
    this.sink(this.format('DEBUG', message));
  }

  private format(level: Level, message: string): string {
    return this.redactor.redact(
      `${new Date().toISOString()} [req_id ${this.requestId}] [${this.method}] ${level} ${message}`,
    );
  }

  private write(level: Level, message: string): void {
    const line = this.format(level, message);
    this.sink(line);
    this.lines.push(line);
    this.bytes += line.length + 1;
    while (this.bytes > MAX_LOG_FIELD_BYTES && this.lines.length > 1) {
      this.bytes -= (this.lines.shift() ?? '').length + 1;
      this.dropped++;
    }
  }

  /** The text for the response's `log` field. */
  text(): string {
    const head = this.dropped > 0 ? `(${this.dropped} earlier lines dropped)\n` : '';
    return head + this.lines.map((l) => `${l}\n`).join('');
  }
}
