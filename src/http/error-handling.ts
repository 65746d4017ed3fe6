/**
 * Every HTTP error answer goes through here, so no client ever sees fastify's own error shape:
 * status from the error table, body `{"error", "code"}` (src/errors.ts, docs/errors.md).
 *
 * Covers thrown errors (route handlers, the body parser, fastify's own checks), unknown routes,
 * fastify's pre-routing "framework errors" and connection-level parse errors.
 */

import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OfframpError, asOfframpError, isOfframpError, toHttpBody } from '../errors.js';

/** Longest URL echoed back in an OFFRAMP_ROUTE_NOT_FOUND message. */
const MAX_URL_IN_MESSAGE = 200;

function fastifyCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

function statusOf(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'statusCode' in err && typeof err.statusCode === 'number'
    ? err.statusCode
    : undefined;
}

/**
 * Any error raised while serving a request, as an OfframpError: fastify's body-parsing and
 * protocol errors become their offramp codes; anything unexpected becomes OFFRAMP_INTERNAL.
 */
export function toOfframpHttpError(err: unknown, maxBodyBytes: number): OfframpError {
  if (isOfframpError(err)) return err;
  const code = fastifyCode(err);
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new OfframpError('OFFRAMP_BODY_TOO_LARGE', { limit: maxBodyBytes });
  if (code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH') {
    return new OfframpError(
      'OFFRAMP_INVALID_REQUEST',
      { reason: 'the body length does not match its Content-Length header' },
      { cause: err },
    );
  }
  // fastify's own client errors (bad URL, unsupported media type, aborted upload, …).
  const status = statusOf(err);
  if (code?.startsWith('FST_') === true && status !== undefined && status >= 400 && status < 500) {
    const reason = err instanceof Error ? err.message : code;
    return new OfframpError('OFFRAMP_INVALID_REQUEST', { reason }, { cause: err });
  }
  return asOfframpError(err);
}

function logError(request: FastifyRequest, original: unknown, err: OfframpError): void {
  if (err.httpStatus >= 500) request.log.error({ err: original, code: err.code }, err.message);
  else request.log.debug({ code: err.code }, err.message);
}

export function sendError(
  request: FastifyRequest,
  reply: FastifyReply,
  original: unknown,
  maxBodyBytes: number,
): FastifyReply {
  const err = toOfframpHttpError(original, maxBodyBytes);
  logError(request, original, err);
  return reply.code(err.httpStatus).type('application/json; charset=utf-8').send(toHttpBody(err));
}

/**
 * Sets the error and not-found handlers on the root instance (route plugins registered after
 * this inherit them). Requests that arrive while the server closes are answered by drain.ts.
 */
export function installErrorHandling(app: FastifyInstance, maxBodyBytes: number): void {
  app.setErrorHandler<FastifyError>((error, request, reply) => sendError(request, reply, error, maxBodyBytes));

  app.setNotFoundHandler(notFoundHandler(maxBodyBytes));
}

/** Answers OFFRAMP_ROUTE_NOT_FOUND for the request's method and path (a plugin with a prefix sets it for its own). */
export function notFoundHandler(maxBodyBytes: number) {
  return (request: FastifyRequest, reply: FastifyReply): FastifyReply => {
    const path = request.url.split('?', 1)[0] ?? request.url;
    const url = path.length > MAX_URL_IN_MESSAGE ? `${path.slice(0, MAX_URL_IN_MESSAGE)}…` : path;
    return sendError(
      request,
      reply,
      new OfframpError('OFFRAMP_ROUTE_NOT_FOUND', { method: request.method, url }),
      maxBodyBytes,
    );
  };
}

/**
 * fastify's `frameworkErrors` option: errors raised before routing (a malformed URL, a failed
 * constraint). Without it fastify answers them in its own shape.
 */
export function frameworkErrorHandler(maxBodyBytes: number) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    void sendError(request, reply, error, maxBodyBytes);
  };
}

/**
 * fastify's `clientErrorHandler` option: the HTTP parser rejected the bytes on a connection
 * (no request object exists). Answer 400 in our shape where the socket can still take it.
 */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || error.code === 'ERR_HTTP_REQUEST_TIMEOUT' || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = JSON.stringify(
    toHttpBody(
      new OfframpError('OFFRAMP_INVALID_REQUEST', {
        reason: `the HTTP request could not be parsed (${error.code ?? error.message})`,
      }),
    ),
  );
  socket.end(
    'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}
