/**
 * The HTTP transport: KServe v2 / Open Inference Protocol REST on fastify, plus `/metrics`.
 *
 * `createHttpServer` builds the instance and registers each feature as a plugin (STYLE.md §8);
 * it does not listen — the caller does (`await app.listen({ host, port })`), and closes it.
 *
 * Bodies are parsed as JSON whatever their content type (`curl -d` sends
 * application/x-www-form-urlencoded), within `maxBodyBytes`.
 */

import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { DataPlane } from '../data-plane/types.js';
import { OfframpError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import { clientErrorHandler, frameworkErrorHandler, installErrorHandling } from './error-handling.js';
import { healthPlugin } from './health-plugin.js';
import { inferPlugin } from './infer-plugin.js';
import { metricsPlugin } from './metrics-plugin.js';
import { modelPlugin } from './model-plugin.js';

export interface HttpServerOptions {
  dataPlane: DataPlane;
  metrics: Metrics;
  /** Largest request body accepted, in bytes (config `server.max_body_bytes`); larger ones get OFFRAMP_BODY_TOO_LARGE (413). */
  maxBodyBytes: number;
  /** A pino-compatible logger, or true for fastify's default one; default: no logging. */
  logger?: FastifyBaseLogger | boolean;
}

/** Longer than any model name or version the config allows (128), so long unknown names get a 404. */
const MAX_PARAM_LENGTH = 256;

export function createHttpServer(options: HttpServerOptions): FastifyInstance {
  const { dataPlane, metrics, maxBodyBytes, logger = false } = options;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) {
    throw new RangeError(`createHttpServer: maxBodyBytes must be a positive integer, got ${String(maxBodyBytes)}`);
  }

  const app: FastifyInstance = Fastify({
    ...(typeof logger === 'boolean' ? { logger } : { loggerInstance: logger }),
    bodyLimit: maxBodyBytes,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH },
    return503OnClosing: false,
    frameworkErrors: frameworkErrorHandler(maxBodyBytes),
    clientErrorHandler,
  });

  installErrorHandling(app, maxBodyBytes);

  // One JSON parser for every content type, so parse errors carry JSON.parse's reason (fastify's
  // default parser drops it). Validation copies what it keeps into fresh objects
  // (infer-json.ts), so "__proto__" keys in the body cannot reach a prototype.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      done(new OfframpError('OFFRAMP_MALFORMED_JSON', { reason: 'the body is empty' }), undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      done(new OfframpError('OFFRAMP_MALFORMED_JSON', { reason }, { cause: err }), undefined);
    }
  });

  void app.register(healthPlugin, { dataPlane });
  void app.register(modelPlugin, { dataPlane });
  void app.register(inferPlugin, { dataPlane });
  void app.register(metricsPlugin, { metrics });

  return app;
}
