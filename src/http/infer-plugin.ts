/**
 * `POST /v2/models/{m}[/versions/{v}]/infer` (KServe v2 / Open Inference Protocol): JSON body →
 * InferRequest → `dataPlane.infer` → JSON response. Nothing else happens here: both transports
 * share one data plane (docs/architecture.md). With the binary tensor data extension
 * (binary-tensors.ts) the body may carry inputs as raw bytes after the JSON, and the response
 * outputs as raw bytes after its JSON.
 *
 * Admission comes first: an onRequest hook asks `dataPlane.admission` before the body is read,
 * and a refusal (OFFRAMP_QUEUE_FULL, OFFRAMP_OVERLOADED) is answered at once, so an overloaded
 * server does not spend its one thread parsing bodies it would refuse. Node discards the unread
 * body, and the connection stays open for the client's next request.
 *
 * When the client closes the connection before the answer is written, the request's `signal` is
 * aborted (reason: OFFRAMP_CANCELLED) so the engine can drop it from the queue or the batch.
 */

import type { FastifyPluginCallback, FastifyReply, onRequestHookHandler } from 'fastify';
import type { DataPlane, InferRequest } from '../data-plane/types.js';
import { OfframpError } from '../errors.js';
import { BINARY_CONTENT_TYPE, INFERENCE_HEADER, binaryOutputChoice, frameResponse } from './binary-tensors.js';
import { formatInferResponse, parseInferBody, type InferResponseJson } from './infer-json.js';
import { FramedBody, useJsonBodies } from './json-body.js';
import { MODEL_PREFIXES } from './model-plugin.js';

export interface InferPluginOptions {
  dataPlane: DataPlane;
}

interface InferRoute {
  Params: { model: string; version?: string };
  Body: unknown;
}

export const inferPlugin: FastifyPluginCallback<InferPluginOptions> = (app, { dataPlane }, done) => {
  useJsonBodies(app, { allowEmpty: false, binaryTensors: true });
  const admit: onRequestHookHandler = (request, _reply, done) => {
    const { model, version } = request.params as InferRoute['Params'];
    const refusal = dataPlane.admission(model, version);
    // An error passed on goes to the error handler, which answers it; the body is never read.
    if (refusal) done(refusal);
    else done();
  };
  for (const prefix of MODEL_PREFIXES) {
    app.post<InferRoute>(
      `${prefix}/infer`,
      { onRequest: admit },
      async (request, reply): Promise<InferResponseJson | FastifyReply> => {
        const body =
          request.body instanceof FramedBody
            ? parseInferBody(request.body.json, request.body.binary)
            : parseInferBody(request.body);
        const binaryOutput = binaryOutputChoice(body.parameters, body.outputs);

        const controller = new AbortController();
        const res = reply.raw;
        // The response's 'close' fires when it was fully written or when the connection went away;
        // only the second is a cancellation. (The request's own 'close' only says the body was read.)
        const onClose = (): void => {
          if (!res.writableFinished) controller.abort(new OfframpError('OFFRAMP_CANCELLED'));
        };
        res.once('close', onClose);
        if (res.destroyed) onClose(); // gone while the body was being parsed

        const inferRequest: InferRequest = { ...body, modelName: request.params.model, signal: controller.signal };
        if (request.params.version !== undefined) inferRequest.modelVersion = request.params.version;
        try {
          const { json, blobs } = formatInferResponse(await dataPlane.infer(inferRequest), binaryOutput);
          if (blobs.length === 0) return json;
          const framed = frameResponse(json, blobs);
          return reply.header(INFERENCE_HEADER, framed.jsonBytes).type(BINARY_CONTENT_TYPE).send(framed.body);
        } finally {
          res.off('close', onClose);
        }
      },
    );
  }
  done();
};
