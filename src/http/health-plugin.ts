/**
 * Server health (KServe v2 / Open Inference Protocol): `GET /v2/health/live` and
 * `GET /v2/health/ready`, for Kubernetes liveness and readiness probes.
 *
 * The status code carries the answer (200 = true). KServe's required_api.md says a false answer
 * is "a 4xx status code"; offramp answers 503 instead, as KServe's own Python server does for a
 * server that is not ready: it is the status load balancers read as "try another replica", and
 * probes treat every status ≥ 400 as a failure either way. The bodies are the Open Inference
 * Protocol's `{"live": bool}` / `{"ready": bool}`.
 */

import type { FastifyPluginCallback } from 'fastify';
import type { DataPlane } from '../data-plane/types.js';

/** Status of a false server-level health answer (see the module comment). */
export const SERVER_NOT_HEALTHY_STATUS = 503;

export interface HealthPluginOptions {
  dataPlane: DataPlane;
}

export const healthPlugin: FastifyPluginCallback<HealthPluginOptions> = (app, { dataPlane }, done) => {
  app.get('/v2/health/live', (_request, reply) => {
    const live = dataPlane.live();
    return reply.code(live ? 200 : SERVER_NOT_HEALTHY_STATUS).send({ live });
  });

  app.get('/v2/health/ready', (_request, reply) => {
    const ready = dataPlane.ready();
    return reply.code(ready ? 200 : SERVER_NOT_HEALTHY_STATUS).send({ ready });
  });

  done();
};
