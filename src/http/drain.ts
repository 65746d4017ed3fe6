/**
 * The HTTP side of a graceful shutdown (the whole sequence is in src/server.ts and
 * docs/architecture.md, "Shutdown").
 *
 * Draining (`begin`): the listener stays open and every request is still read and routed; the
 * data plane refuses new inference with OFFRAMP_SHUTTING_DOWN and readiness answers 503, and
 * every answer carries `Connection: close`, so keep-alive clients reconnect elsewhere after it.
 * The listener must stay open because closing it resets every connection the kernel accepted and
 * node has not yet: requests sent in full, before the signal, that would get no answer at all.
 *
 * Closing (fastify's `close`, once nothing is in flight): requests that still arrive, on
 * connections already open, are refused with OFFRAMP_SHUTTING_DOWN. The refusal waits until the
 * body has been read (preHandler, not onRequest): closing a socket with unread bytes in it
 * resets the connection, and the reset can destroy the answer before the client reads it.
 */
import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { OfframpError } from '../errors.js';
import { sendError } from './error-handling.js';

export class HttpDrain {
  private drainingFlag = false;
  private closing = false;
  private inFlight = 0;
  private accepted = 0;
  private readonly open = new Set<Socket>();
  /** Each open connection's place in the order of acceptance (1 = the first accepted). */
  private readonly acceptedAs = new WeakMap<Socket, number>();

  /** Whether `begin` was called (or the server is closing). */
  get draining(): boolean {
    return this.drainingFlag || this.closing;
  }

  /** Requests whose headers were read and whose answer is not yet written (or whose connection has not ended). */
  get requestsInFlight(): number {
    return this.inFlight;
  }

  /** Connections accepted so far: unchanged across a turn of the event loop, the kernel had none waiting. */
  get connectionsAccepted(): number {
    return this.accepted;
  }

  /**
   * Open connections from which nothing has been read yet (their request, if any, has not begun),
   * counting only the first `upTo` accepted when given.
   */
  connectionsUnread(upTo = Number.POSITIVE_INFINITY): number {
    let unread = 0;
    for (const socket of this.open) if (socket.bytesRead === 0 && (this.acceptedAs.get(socket) ?? 0) <= upTo) unread++;
    return unread;
  }

  begin(): void {
    this.drainingFlag = true;
  }

  /** Installs the hooks on the root instance (createHttpServer calls it once). */
  install(app: FastifyInstance, maxBodyBytes: number): void {
    // Counted on node's server, not in fastify hooks: a request counts from its first handler
    // call to the moment its response is done or its socket is gone, whatever happened between.
    app.server.on('connection', (socket: Socket) => {
      this.accepted++;
      this.acceptedAs.set(socket, this.accepted);
      this.open.add(socket);
      socket.once('close', () => this.open.delete(socket));
    });
    app.server.on('request', (_request, response) => {
      this.inFlight++;
      response.once('close', () => this.inFlight--);
    });

    app.addHook('preClose', (done) => {
      this.closing = true;
      done();
    });
    app.addHook('preHandler', (request, reply, done) => {
      if (!this.closing) {
        done();
        return;
      }
      // Sending from a callback hook ends the request here; `done` must not be called then.
      void sendError(request, reply, new OfframpError('OFFRAMP_SHUTTING_DOWN'), maxBodyBytes);
    });
    app.addHook('onSend', (_request, reply, payload, done) => {
      if (this.draining) reply.header('connection', 'close');
      done(null, payload);
    });
  }
}
