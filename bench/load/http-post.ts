/**
 * One keep-alive HTTP POST helper for both load generators (closed loop and open loop), so they
 * send requests the same way (bodies and their headers come from request-body.ts). It resolves with the status and body text and never rejects: a
 * connection failure or a timeout is status 0 with the reason, which the callers count as an
 * error (a timeout can be overload; a failed connection is breakage).
 */
import { Agent, request } from 'node:http';
import type { RequestBody } from './request-body.js';

export interface PostResult {
  /** HTTP status, or 0 when no answer came. */
  status: number;
  body: string;
  /** Why no answer came (status 0): the client gave up waiting, or the connection failed. */
  failure?: 'CLIENT_TIMEOUT' | 'CLIENT_CONNECTION_ERROR';
}

export interface Poster {
  post(request: RequestBody): Promise<PostResult>;
  close(): void;
}

export function createPoster(url: string, maxSockets: number, timeoutMs = 30_000): Poster {
  const agent = new Agent({ keepAlive: true, maxSockets });
  const target = new URL(url);
  const post = ({ body, headers }: RequestBody): Promise<PostResult> =>
    new Promise((resolve) => {
      const req = request(
        {
          host: target.hostname,
          port: target.port,
          path: target.pathname,
          method: 'POST',
          agent,
          timeout: timeoutMs,
          headers,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', () => resolve({ status: 0, body: '', failure: 'CLIENT_CONNECTION_ERROR' }));
        },
      );
      let timedOut = false;
      req.on('timeout', () => {
        timedOut = true;
        req.destroy(new Error('timeout'));
      });
      req.on('error', () =>
        resolve({ status: 0, body: '', failure: timedOut ? 'CLIENT_TIMEOUT' : 'CLIENT_CONNECTION_ERROR' }),
      );
      req.end(body);
    });
  return { post, close: () => agent.destroy() };
}
