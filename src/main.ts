import { randomBytes } from 'node:crypto';
import { BACKENDS, backendNames } from './backends/registry.ts';
import { configPathFromArgv } from './config/argv.ts';
import { type CpiConfig, parseConfig, readConfigFile } from './config/config.ts';
import type { Backend } from './cpi/backend.ts';
import { Logger } from './log/logger.ts';
import { Redactor } from './log/redact.ts';
import { dispatch } from './rpc/dispatch.ts';
import { asCpiFailure, CpiFailure, cpiError } from './rpc/errors.ts';
import { type CpiRequest, MAX_REQUEST_BYTES, parseRequest, stemcellApiVersion } from './rpc/request.ts';
import { type CpiResponse, errorResponse, successResponse } from './rpc/response.ts';

async function readStdin(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    // Keep reading (and dropping) past the limit so the caller's write never blocks.
    if (size <= MAX_REQUEST_BYTES + 1) chunks.push(chunk);
  }
  if (size > MAX_REQUEST_BYTES)
    throw cpiError(`Request is ${size} bytes, more than the ${MAX_REQUEST_BYTES} bytes accepted`);
  return Buffer.concat(chunks);
}

function loadConfig(argv: readonly string[], request: CpiRequest): CpiConfig {
  const path = configPathFromArgv(argv);
  if (!path)
    throw cpiError('No config file given: run as `cpi /path/to/cpi.json` (or -configPath=…, --config …)');
  const config = parseConfig(readConfigFile(path), request.context);
  if (!Object.hasOwn(BACKENDS, config.plugin))
    throw cpiError(
      `Invalid config: config.cloud.plugin must be one of ${backendNames()
        .map((n) => `"${n}"`)
        .join(', ')}, got "${config.plugin}"`,
    );
  return config;
}

async function handle(
  readInput: () => Promise<Buffer>,
  argv: readonly string[],
  redactor: Redactor,
): Promise<CpiResponse> {
  let logger = new Logger(`cpi-${randomBytes(4).toString('hex')}`, redactor);
  let backend: Backend | undefined;
  try {
    const request = parseRequest(await readInput());
    redactor.learn(request.arguments);
    redactor.learn(request.context);
    if (request.context.request_id) logger = new Logger(request.context.request_id, redactor);
    logger.method = request.method;
    const config = loadConfig(argv, request);
    redactor.learn(config.properties);
    const descriptor = BACKENDS[config.plugin] as (typeof BACKENDS)[string];
    descriptor.checkProperties(config.properties[config.plugin]);
    logger.debug(`api_version ${request.apiVersion}, plugin ${config.plugin}`);
    const result = await dispatch(request, {
      apiVersion: request.apiVersion,
      stemcellFormats: descriptor.stemcellFormats,
      backend: async () => {
        if (!backend) {
          const module = await descriptor.load();
          const props = config.properties[config.plugin];
          backend = module.create({
            properties: typeof props === 'object' && props !== null ? (props as Record<string, unknown>) : {},
            agent: config.agent,
            directorUuid: request.context.director_uuid ?? '',
            stemcellApiVersion: stemcellApiVersion(request.context),
            logger,
          });
        }
        return backend;
      },
    });
    return successResponse(result, logger.text());
  } catch (e) {
    const failure = asCpiFailure(e);
    logger.error(`${failure.type}: ${failure.message}`);
    if (e instanceof Error && !(e instanceof CpiFailure) && e.stack) logger.debug(e.stack);
    return errorResponse(failure, logger.text(), redactor.redact);
  } finally {
    backend?.close?.();
  }
}

async function main(): Promise<void> {
  const redactor = new Redactor();
  let response: CpiResponse;
  try {
    response = await handle(readStdin, process.argv.slice(2), redactor);
  } catch (e) {
    response = errorResponse(asCpiFailure(e), '', redactor.redact);
  }
  const line = `${JSON.stringify(response)}\n`;
  process.stdout.write(line, (err) => process.exit(err ? 1 : 0));
}

void main();
