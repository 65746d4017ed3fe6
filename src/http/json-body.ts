/**
 * The one body parser, for every content type (`curl -d` sends application/x-www-form-urlencoded,
 * binary tensor clients application/octet-stream or application/json), so parse errors carry
 * JSON.parse's reason (fastify's default parser drops it). Validation copies what it keeps into
 * fresh objects (infer-json.ts, admin-plugin.ts), so "__proto__" keys in the body cannot reach a
 * prototype.
 *
 * The body is read as bytes, within fastify's body limit (server.max_body_bytes). Where binary
 * tensors are taken (the infer routes) and the request has `Inference-Header-Content-Length`,
 * only that many leading bytes are JSON and the rest is kept, uncopied, as a FramedBody's
 * `binary` (binary-tensors.ts); whatever the Content-Type says.
 */
import type { FastifyInstance } from 'fastify';
import { OfframpError } from '../errors.js';
import { INFERENCE_HEADER, splitBody } from './binary-tensors.js';

/** A body in the binary tensor data framing: the parsed JSON part and the bytes after it. */
export class FramedBody {
  constructor(
    readonly json: unknown,
    readonly binary: Buffer,
  ) {}
}

export interface JsonBodyOptions {
  /** An empty body is `undefined` rather than OFFRAMP_MALFORMED_JSON (routes that take no body). */
  allowEmpty: boolean;
  /** Honour Inference-Header-Content-Length: such a body parses to a FramedBody. Default false (the header is ignored). */
  binaryTensors?: boolean;
}

/** Replaces the instance's parsers (in its encapsulation context) with this one. */
export function useJsonBodies(app: FastifyInstance, options: JsonBodyOptions): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (request, body, done) => {
    try {
      const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
      const header = options.binaryTensors === true ? request.headers[INFERENCE_HEADER] : undefined;
      if (header === undefined) {
        done(null, parseJson(bytes, options.allowEmpty));
        return;
      }
      const { json, binary } = splitBody(bytes, header);
      done(null, new FramedBody(parseJson(json, options.allowEmpty), binary));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}

function parseJson(bytes: Buffer, allowEmpty: boolean): unknown {
  const text = bytes.toString('utf8');
  if (text.trim() === '') {
    if (allowEmpty) return undefined;
    throw new OfframpError('OFFRAMP_MALFORMED_JSON', { reason: 'the body is empty' });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new OfframpError('OFFRAMP_MALFORMED_JSON', { reason }, { cause: err });
  }
}
