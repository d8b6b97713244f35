import { BACKENDS } from './backends/registry.ts';
import { configPathFromArgv } from './config/argv.ts';
import { type CpiConfig, parseConfig, readConfigFile } from './config/config.ts';
import type { Backend, BackendDescriptor } from './cpi/backend.ts';
import { Logger } from './log/logger.ts';
import type { Redactor } from './log/redact.ts';
import { dispatch } from './rpc/dispatch.ts';
import { asCpiFailure, CpiFailure, cpiError } from './rpc/errors.ts';
import { type CpiRequest, parseRequest, stemcellApiVersion } from './rpc/request.ts';
import { type CpiResponse, errorResponse, successResponse } from './rpc/response.ts';

/** What one CPI call needs from its process; tests pass their own backends and stderr. */
export interface CallEnvironment {
  readInput: () => Promise<Buffer>;
  argv: readonly string[];
  redactor: Redactor;
  backends?: Record<string, BackendDescriptor>;
  stderr?: (line: string) => void;
}

async function loadConfig(
  argv: readonly string[],
  request: CpiRequest,
  backends: Record<string, BackendDescriptor>,
): Promise<CpiConfig> {
  const path = configPathFromArgv(argv);
  if (!path)
    throw cpiError('No config file given: run as `cpi /path/to/cpi.json` (or -configPath=…, --config …)');
  const config = parseConfig(await readConfigFile(path), request.context, {
    overridableOf: (plugin) =>
      Object.hasOwn(backends, plugin) ? backends[plugin]?.contextOverridable : undefined,
    sections: Object.keys(backends),
  });
  if (!Object.hasOwn(backends, config.plugin))
    throw cpiError(
      `Invalid config: config.cloud.plugin must be one of ${Object.keys(backends)
        .map((n) => `"${n}"`)
        .join(', ')}, got "${config.plugin}"`,
    );
  return config;
}

/** Names a call's log lines until its request_id is known: Math.random will do (no node:crypto to load). */
const provisionalRequestId = () => `cpi-${Math.random().toString(16).slice(2, 10).padEnd(8, '0')}`;

/** One CPI call: request bytes in, the response out. Never throws for anything the caller sent. */
export async function handleCall(env: CallEnvironment): Promise<CpiResponse> {
  const { readInput, argv, redactor, backends = BACKENDS, stderr } = env;
  const newLogger = (requestId: string) => new Logger(requestId, redactor, stderr);
  let logger = newLogger(provisionalRequestId());
  let backend: Backend | undefined;
  try {
    const request = parseRequest(await readInput());
    redactor.learn(request.arguments);
    redactor.learn(request.context);
    if (request.context.request_id) logger = newLogger(request.context.request_id);
    logger.method = request.method;
    const config = await loadConfig(argv, request, backends);
    redactor.learn(config.properties);
    const descriptor = backends[config.plugin] as BackendDescriptor;
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
    const cause = e instanceof CpiFailure ? e.cause : e;
    if (cause instanceof Error && !(cause instanceof CpiFailure) && cause.stack) logger.trace(cause.stack);
    return errorResponse(failure, logger.text(), redactor.redact);
  } finally {
    backend?.close?.();
  }
}
