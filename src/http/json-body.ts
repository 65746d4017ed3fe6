/**
 * The one JSON body parser, for every content type (`curl -d` sends
 * application/x-www-form-urlencoded), so parse errors carry JSON.parse's reason (fastify's default
 * parser drops it). Validation copies what it keeps into fresh objects (infer-json.ts,
 * admin-plugin.ts), so "__proto__" keys in the body cannot reach a prototype.
 */
import type { FastifyInstance } from 'fastify';
import { OfframpError } from '../errors.js';

/**
 * Replaces the instance's parsers (in its encapsulation context) with the JSON one. `allowEmpty`:
 * an empty body is `undefined` rather than OFFRAMP_MALFORMED_JSON (routes that take no body).
 */
export function useJsonBodies(app: FastifyInstance, options: { allowEmpty: boolean }): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text.trim() === '') {
      if (options.allowEmpty) done(null, undefined);
      else done(new OfframpError('OFFRAMP_MALFORMED_JSON', { reason: 'the body is empty' }), undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      done(new OfframpError('OFFRAMP_MALFORMED_JSON', { reason }, { cause: err }), undefined);
    }
  });
}
