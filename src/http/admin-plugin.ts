/**
 * Operator endpoints, outside the KServe v2 protocol (under `admin/`), HTTP only:
 *
 * - `GET    /v2/models/{m}[/versions/{v}]/admin/tuner` — tuner state and the thresholds in force
 * - `POST   /v2/models/{m}[/versions/{v}]/admin/tuner/pause` — stop applying the online tuner's changes
 * - `POST   /v2/models/{m}[/versions/{v}]/admin/tuner/resume` — apply them again (the current ones at once)
 * - `PUT    /v2/models/{m}[/versions/{v}]/admin/thresholds` — body `{"thresholds": {"0": 0.99, "3": null}}`:
 *   pin those ramps' thresholds (null = never); ramps pinned earlier and not listed stay pinned
 * - `DELETE /v2/models/{m}[/versions/{v}]/admin/thresholds` — unpin every ramp
 * - `POST   /v2/models/{m}[/versions/{v}]/admin/faults` — body `{"fault": "crash-worker" | "hang-worker",
 *   "worker"?: <index, default 0>}`: that executor worker really crashes (at once; answered once the
 *   pool has seen it fail) or really hangs (at once; seen when a batch it holds passes
 *   `server.worker_timeout_ms`). Only with `server.fault_injection: true`, else
 *   OFFRAMP_FAULT_INJECTION_DISABLED (403); answers a `FaultInjectionReport`
 *
 * The tuner endpoints answer the state after the call (`TunerAdminReport`). Access needs
 * `Authorization: Bearer <server.admin_token>`, checked before the body is read: no token
 * configured → OFFRAMP_ADMIN_DISABLED (403), a missing or wrong one → OFFRAMP_UNAUTHORIZED (401).
 * Each refusal counts in `offramp_admin_auth_failures_total{reason}` and logs one warning line
 * with its reason; neither the token given nor the configured one is ever logged or echoed.
 */

import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyPluginCallback, FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import {
  FAULT_KINDS,
  type AdminPlane,
  type FaultInjectionReport,
  type FaultKind,
  type TunerAdminReport,
} from '../data-plane/types.js';
import { OfframpError } from '../errors.js';
import { ADMIN_AUTH_FAILURES, type AdminAuthFailure, type Metrics } from '../metrics.js';
import { useJsonBodies } from './json-body.js';
import { MODEL_PREFIXES } from './model-plugin.js';

export interface AdminPluginOptions {
  /** The controls; absent: the endpoints are disabled whatever the token. */
  plane?: AdminPlane;
  /** Bearer token (config `server.admin_token`); null disables the endpoints. */
  token: string | null;
  /** Where refused attempts are counted (`offramp_admin_auth_failures_total`); absent: not counted. */
  metrics?: Metrics;
}

interface ModelParams {
  model: string;
  version?: string;
}

/** Ramp ids as the config writes them (schema.ts): 0..9999, no leading zeros. */
const RAMP_ID = /^(0|[1-9][0-9]{0,3})$/;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Compares in time independent of where the strings differ: both sides are hashed first, so
 * timingSafeEqual gets equal-length buffers and the token's length does not leak either.
 */
export function tokenMatches(given: string, token: string): boolean {
  return timingSafeEqual(digest(given), digest(token));
}

function bearerToken(header: string | undefined): string | undefined {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1];
}

/** The `thresholds` mapping of a PUT body, as ramp id → threshold; ranges are the data plane's to check. */
export function parseThresholdsBody(body: unknown): Map<number, number | null> {
  const invalid = (reason: string) => new OfframpError('OFFRAMP_INVALID_ADMIN_REQUEST', { reason });
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw invalid('the body must be a JSON object {"thresholds": {"<ramp id>": <number or null>}}');
  const extra = Object.keys(body).filter((k) => k !== 'thresholds');
  if (extra.length > 0) throw invalid(`unknown field ${JSON.stringify(extra[0])}; the body is {"thresholds": {...}}`);
  const thresholds: unknown = (body as { thresholds?: unknown }).thresholds;
  if (typeof thresholds !== 'object' || thresholds === null || Array.isArray(thresholds)) {
    throw invalid('"thresholds" must be an object mapping ramp ids to thresholds (a number, or null for "never")');
  }
  const out = new Map<number, number | null>();
  for (const [key, value] of Object.entries(thresholds as Record<string, unknown>)) {
    if (!RAMP_ID.test(key)) throw invalid(`${JSON.stringify(key)} is not a ramp id (an integer 0..9999)`);
    if (value !== null && typeof value !== 'number')
      throw invalid(`thresholds.${key}: ${JSON.stringify(value)} is not a number or null`);
    out.set(Number(key), value);
  }
  return out;
}

/** The body of a faults POST, checked against FAULT_KINDS; whether the worker exists is the data plane's to check. */
export function parseFaultBody(body: unknown): { fault: FaultKind; worker: number | undefined } {
  const invalid = (reason: string) => new OfframpError('OFFRAMP_INVALID_ADMIN_REQUEST', { reason });
  const shape = `{"fault": ${FAULT_KINDS.map((k) => `"${k}"`).join(' | ')}, "worker"?: <index>}`;
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw invalid(`the body must be a JSON object ${shape}`);
  const extra = Object.keys(body).filter((k) => k !== 'fault' && k !== 'worker');
  if (extra.length > 0) throw invalid(`unknown field ${JSON.stringify(extra[0])}; the body is ${shape}`);
  const { fault, worker } = body as { fault?: unknown; worker?: unknown };
  if (!(FAULT_KINDS as readonly unknown[]).includes(fault))
    throw invalid(`"fault" is ${JSON.stringify(fault) ?? 'missing'}; expected one of ${FAULT_KINDS.join(', ')}`);
  if (worker !== undefined && !(typeof worker === 'number' && Number.isSafeInteger(worker) && worker >= 0))
    throw invalid(`"worker" is ${JSON.stringify(worker)}; expected a worker index (an integer ≥ 0)`);
  return { fault: fault as FaultKind, worker };
}

interface AdminRoute {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** Under `/v2/models/{m}[/versions/{v}]/admin/`. */
  path: string;
  run(plane: AdminPlane, params: ModelParams, body: unknown): TunerAdminReport | Promise<FaultInjectionReport>;
}

const ROUTES: readonly AdminRoute[] = [
  { method: 'GET', path: 'tuner', run: (plane, { model, version }) => plane.tunerState(model, version) },
  { method: 'POST', path: 'tuner/pause', run: (plane, { model, version }) => plane.pauseTuner(model, version) },
  { method: 'POST', path: 'tuner/resume', run: (plane, { model, version }) => plane.resumeTuner(model, version) },
  {
    method: 'PUT',
    path: 'thresholds',
    run: (plane, { model, version }, body) => plane.pinThresholds(model, version, parseThresholdsBody(body)),
  },
  { method: 'DELETE', path: 'thresholds', run: (plane, { model, version }) => plane.unpinThresholds(model, version) },
  {
    method: 'POST',
    path: 'faults',
    run: (plane, { model, version }, body) => {
      const { fault, worker } = parseFaultBody(body);
      return plane.injectFault(model, version, fault, worker);
    },
  },
];

export const adminPlugin: FastifyPluginCallback<AdminPluginOptions> = (app, { plane, token, metrics }, done) => {
  // Only PUT and the faults POST take a body; a client that sends `content-type: application/json`
  // and nothing else to pause or resume should not get a parse error. (This plugin is
  // encapsulated: the KServe routes keep refusing empty bodies.)
  useJsonBodies(app, { allowEmpty: true });
  // Every reason exported from the start (at 0), so a rate or an alert has a series before the first failure.
  for (const reason of ADMIN_AUTH_FAILURES) metrics?.adminAuthFailures.inc({ reason }, 0);
  const refuse = (request: FastifyRequest, reason: AdminAuthFailure, err: OfframpError): OfframpError => {
    metrics?.adminAuthFailures.inc({ reason });
    // The reason and the route only: never the Authorization header or any part of a token.
    request.log.warn({ reason, url: request.url }, 'admin request refused');
    return err;
  };
  // onRequest runs before the body is parsed: an unauthorised caller learns nothing from parse errors.
  const authorise: onRequestAsyncHookHandler = async (request, reply) => {
    if (!plane || token === null) throw refuse(request, 'disabled', new OfframpError('OFFRAMP_ADMIN_DISABLED'));
    const given = bearerToken(request.headers.authorization);
    if (given === undefined || !tokenMatches(given, token)) {
      void reply.header('www-authenticate', 'Bearer realm="offramp-admin"');
      throw refuse(request, given === undefined ? 'missing' : 'wrong', new OfframpError('OFFRAMP_UNAUTHORIZED'));
    }
  };

  for (const prefix of MODEL_PREFIXES) {
    for (const route of ROUTES) {
      app.route<{ Params: ModelParams }>({
        method: route.method,
        url: `${prefix}/admin/${route.path}`,
        onRequest: authorise,
        handler: (request) => {
          // authorise has refused every request when there are no controls.
          if (!plane) throw new OfframpError('OFFRAMP_ADMIN_DISABLED');
          return route.run(plane, request.params, request.body);
        },
      });
    }
  }

  done();
};
