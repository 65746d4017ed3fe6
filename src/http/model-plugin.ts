/**
 * Metadata routes (KServe v2 / Open Inference Protocol) and offramp's exits report:
 *
 * - `GET /v2` — server metadata; its `extensions` add `binary_tensor_data`, the HTTP transport's own
 *   (binary-tensors.ts), to the data plane's
 * - `GET /v2/models/{m}[/versions/{v}]` — model metadata
 * - `GET /v2/models/{m}[/versions/{v}]/ready` — model readiness
 * - `GET /v2/models/{m}[/versions/{v}]/exits` — live exit configuration and window statistics
 *
 * Model readiness follows KServe's required_api.md: "A 200 status code indicates true and a 4xx
 * status code indicates false"; the 4xx is 400, as NVIDIA Triton answers. The body is the Open
 * Inference Protocol's `{"name", "ready"}`, plus offramp's `reason` when false (e.g. its executor
 * workers restart, or failed too often to be restarted). An unknown model or version is a 404 with its code.
 */

import type { FastifyPluginCallback } from 'fastify';
import type { DataPlane, ServerMetadata } from '../data-plane/types.js';
import { BINARY_TENSOR_DATA_EXTENSION } from './binary-tensors.js';

/** Status of a "not ready" model-ready answer (see the module comment). */
export const MODEL_NOT_READY_STATUS = 400;

export interface ModelPluginOptions {
  dataPlane: DataPlane;
}

interface ModelParams {
  model: string;
  version?: string;
}

/** The two spellings of a model's URL: without a version (the served one) and with one. */
export const MODEL_PREFIXES = ['/v2/models/:model', '/v2/models/:model/versions/:version'] as const;

export const modelPlugin: FastifyPluginCallback<ModelPluginOptions> = (app, { dataPlane }, done) => {
  app.get('/v2', (): ServerMetadata => {
    const metadata = dataPlane.serverMetadata();
    return { ...metadata, extensions: [...metadata.extensions, BINARY_TENSOR_DATA_EXTENSION] };
  });

  for (const prefix of MODEL_PREFIXES) {
    app.get<{ Params: ModelParams }>(prefix, (request) =>
      dataPlane.modelMetadata(request.params.model, request.params.version),
    );

    app.get<{ Params: ModelParams }>(`${prefix}/ready`, (request, reply) => {
      const { model, version } = request.params;
      const reason = dataPlane.modelNotReadyReason(model, version);
      if (reason === null) return reply.code(200).send({ name: model, ready: true });
      return reply.code(MODEL_NOT_READY_STATUS).send({ name: model, ready: false, reason });
    });

    app.get<{ Params: ModelParams }>(`${prefix}/exits`, (request) =>
      dataPlane.exits(request.params.model, request.params.version),
    );
  }

  done();
};
