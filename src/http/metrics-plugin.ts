/** `GET /metrics`: the Prometheus text of the metrics registry (src/metrics.ts), refreshed first (`Metrics.refresh`). */

import type { FastifyPluginCallback } from 'fastify';
import type { Metrics } from '../metrics.js';

export interface MetricsPluginOptions {
  metrics: Metrics;
}

export const metricsPlugin: FastifyPluginCallback<MetricsPluginOptions> = (app, { metrics }, done) => {
  app.get('/metrics', async (_request, reply) => {
    metrics.refresh();
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });
  done();
};
