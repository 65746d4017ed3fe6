/**
 * The HTTP transport: KServe v2 / Open Inference Protocol REST on fastify, plus `/metrics`, the
 * token-protected admin endpoints (admin-plugin.ts) and the live dashboard (dashboard-plugin.ts).
 *
 * `createHttpServer` builds the instance and registers each feature as a plugin (no core edits);
 * it does not listen — the caller does (`await app.listen({ host, port })`), and closes it.
 *
 * Bodies are parsed as JSON whatever their content type (json-body.ts), within `maxBodyBytes`.
 */

import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { DataPlane } from '../data-plane/types.js';
import type { Metrics } from '../metrics.js';
import type { Dashboard } from '../dashboard/dashboard.js';
import { adminPlugin, type AdminPluginOptions } from './admin-plugin.js';
import { dashboardPlugin } from './dashboard-plugin.js';
import { HttpDrain } from './drain.js';
import { clientErrorHandler, frameworkErrorHandler, installErrorHandling } from './error-handling.js';
import { healthPlugin } from './health-plugin.js';
import { useJsonBodies } from './json-body.js';
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
  /** Admin endpoints' controls and token; absent: they answer OFFRAMP_ADMIN_DISABLED. */
  admin?: AdminPluginOptions;
  /** The server's shutdown state (drain.ts); default: one of its own, which only `close()` sets. */
  drain?: HttpDrain;
  /** The live tuning dashboard, served under /dashboard (dashboard-plugin.ts); absent: no such routes. */
  dashboard?: Dashboard;
}

/** Longer than any model name or version the config allows (128), so long unknown names get a 404. */
const MAX_PARAM_LENGTH = 256;

export function createHttpServer(options: HttpServerOptions): FastifyInstance {
  const { dataPlane, metrics, maxBodyBytes, logger = false, admin, drain = new HttpDrain(), dashboard } = options;
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) {
    throw new RangeError(`createHttpServer: maxBodyBytes must be a positive integer, got ${String(maxBodyBytes)}`);
  }

  const app: FastifyInstance = Fastify({
    ...(typeof logger === 'boolean' ? { logger } : { loggerInstance: logger }),
    bodyLimit: maxBodyBytes,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: MAX_PARAM_LENGTH },
    // fastify's own 503 while closing has its own body shape; drain.ts answers OFFRAMP_SHUTTING_DOWN.
    return503OnClosing: false,
    frameworkErrors: frameworkErrorHandler(maxBodyBytes),
    clientErrorHandler,
  });

  installErrorHandling(app, maxBodyBytes);
  drain.install(app, maxBodyBytes);

  useJsonBodies(app, { allowEmpty: false });

  void app.register(healthPlugin, { dataPlane });
  void app.register(modelPlugin, { dataPlane });
  void app.register(inferPlugin, { dataPlane });
  void app.register(metricsPlugin, { metrics });
  void app.register(adminPlugin, { ...(admin ?? { token: null }), metrics });
  if (dashboard) void app.register(dashboardPlugin, { dashboard, maxBodyBytes, prefix: '/dashboard' });

  return app;
}
