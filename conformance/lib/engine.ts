import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { prepareTestEngine, type TestEngine } from '../../test/support/engine.ts';
import { DockerApi } from './docker.ts';

/**
 * A second, private dockerd for the engine-restart faults: the tests' private engine
 * (test/support/engine.ts: its own data root, exec root, pidfile, socket and bridge; the shared
 * engine at /var/run/docker.sock is never touched), seen through the suite's DockerApi.
 */
export class PrivateEngine {
  readonly api: DockerApi;

  private constructor(private readonly engine: TestEngine) {
    this.api = new DockerApi(engine.socket);
  }

  static available(): string | undefined {
    if (process.getuid?.() !== 0) return 'the suite is not running as root';
    try {
      execFileSync('sh', ['-c', 'command -v dockerd'], { stdio: 'ignore' });
    } catch {
      return 'no dockerd binary on PATH';
    }
    return undefined;
  }

  static async prepare(): Promise<PrivateEngine> {
    return new PrivateEngine(await prepareTestEngine());
  }

  get tag(): string {
    return this.engine.id;
  }

  /** unix:///… */
  get host(): string {
    return this.engine.socket;
  }

  get pid(): number | undefined {
    return this.engine.pid();
  }

  start(): Promise<void> {
    return this.engine.start();
  }

  /** SIGTERM: running containers stop, and come back on the next start. */
  stop(): Promise<void> {
    return this.engine.stop();
  }

  logTail(): string {
    try {
      return readFileSync(this.engine.logFile, 'utf8').slice(-1500);
    } catch {
      return '(no log)';
    }
  }

  async destroy(): Promise<void> {
    this.api.close();
    await this.engine.destroy();
  }
}
