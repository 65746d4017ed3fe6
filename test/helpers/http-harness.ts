/**
 * The HTTP transport over a fake data plane, for fastify.inject() tests: one app per call, each
 * with its own metrics registry, all closed by `closeHttpHarnesses` (call it in afterEach).
 */
import type { FastifyInstance } from 'fastify';
import type { AdminPlane } from '../../src/data-plane/types.js';
import { createHttpServer } from '../../src/http/server.js';
import { createMetrics, type Metrics } from '../../src/metrics.js';
import type { FakeDataPlane } from './fake-data-plane.js';

export interface HttpHarness {
  app: FastifyInstance;
  plane: FakeDataPlane;
  metrics: Metrics;
}

const open: HttpHarness[] = [];

export function httpHarness(
  plane: FakeDataPlane,
  options: { maxBodyBytes: number; admin?: { plane: AdminPlane; token: string | null } | undefined },
): HttpHarness {
  // Process metrics off: their monitors outlive the registry and these tests build many.
  const metrics = createMetrics({ processMetrics: false });
  const { maxBodyBytes, admin } = options;
  const app = createHttpServer({ dataPlane: plane, metrics, maxBodyBytes, ...(admin ? { admin } : {}) });
  const h = { app, plane, metrics };
  open.push(h);
  return h;
}

export async function closeHttpHarnesses(): Promise<void> {
  for (const h of open.splice(0)) {
    await h.app.close();
    h.metrics.close();
  }
}
