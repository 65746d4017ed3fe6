/**
 * The HTTP transport on its own, so a failure here is the transport's: fastify.inject() against
 * the fake DataPlane of test/helpers — no model, no engine. One test listens on 127.0.0.1 to see a
 * real client disconnect.
 */
import { request as httpRequest } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import type {
  AdminPlane,
  FaultInjectionReport,
  FaultKind,
  InferRequest,
  InferResponse,
  TunerAdminReport,
} from '../src/data-plane/types.js';
import { OfframpError } from '../src/errors.js';
import { tokenMatches } from '../src/http/admin-plugin.js';
import { INACTIVE_THRESHOLD, createMetrics, exitLabel, recordExitsReport } from '../src/metrics.js';
import { FakeDataPlane, type FakeModel } from './helpers/fake-data-plane.js';
import { closeHttpHarnesses, httpHarness, type HttpHarness } from './helpers/http-harness.js';

const MODEL = 'tiny';
const VERSION = '1';

/** The one model served: metadata, and the exits report of a static tuner with one active ramp. */
const TINY_MODEL: FakeModel = {
  metadata: {
    name: MODEL,
    versions: [VERSION],
    platform: 'onnxruntime_onnx',
    inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 2, 2] }],
    outputs: [{ name: 'logits', datatype: 'FP32', shape: [-1, 3] }],
  },
  exits: {
    model: MODEL,
    version: VERSION,
    policy: 'confidence',
    mode: 'release',
    tuner: {
      kind: 'static',
      online: false,
      paused: false,
      pinned: {},
      proposed: null,
      estimates: null,
      probeShare: 1,
      restored: null,
    },
    rampOverhead: 0.02,
    cascade: null,
    ramps: [
      {
        id: 0,
        kind: 'ramp',
        active: true,
        threshold: 0.9,
        computeBefore: 0.3,
        disabled: null,
        exitRate: 0.4,
        agreement: 0.99,
      },
    ],
    window: { size: 10, capacity: 100, disagreement: 0.01, earlyFraction: 0.4, estimatedSavings: 0.25 },
  },
};

/** A fixed answer with one output of each typed-array kind the data plane produces. */
function answer(request: InferRequest): InferResponse {
  return {
    id: request.id ?? 'generated-id',
    modelName: request.modelName,
    modelVersion: VERSION,
    parameters: { early: true, exit_ramp: 0, exit_depth: 0.3, confidence: 0.95 },
    outputs: [
      { name: 'logits', datatype: 'FP32', shape: [1, 3], data: new Float32Array([0.5, -1, 2]) },
      { name: 'label', datatype: 'INT64', shape: [1], data: new BigInt64Array([2n]) },
      { name: 'exit', datatype: 'INT32', shape: [1], data: new Int32Array([0]), parameters: { per_row: true } },
      { name: 'class_name', datatype: 'BYTES', shape: [1], data: ['bag'] },
    ],
  };
}

const VALID_BODY = {
  id: 'req-1',
  parameters: { priority: 1 },
  inputs: [{ name: 'x', shape: [1, 2, 2], datatype: 'FP32', data: [1, 2, 3, 4] }],
};

function harness(maxBodyBytes = 64 * 1024, admin?: { plane: AdminPlane; token: string | null }): HttpHarness {
  const plane = new FakeDataPlane({ models: [TINY_MODEL], infer: (request) => Promise.resolve(answer(request)) });
  return httpHarness(plane, { maxBodyBytes, admin });
}

afterEach(closeHttpHarnesses);

function postInfer(app: FastifyInstance, body: unknown, path = `/v2/models/${MODEL}/infer`) {
  return app.inject({
    method: 'POST',
    url: path,
    headers: { 'content-type': 'application/json' },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

describe('health routes', () => {
  it('answers live 200 {live:true} while the data plane is live, 503 {live:false} when not', async () => {
    const { app, plane } = harness();
    let res = await app.inject({ method: 'GET', url: '/v2/health/live' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ live: true });
    plane.isLive = false;
    res = await app.inject({ method: 'GET', url: '/v2/health/live' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ live: false });
  });

  it('answers ready 200 {ready:true} when ready and 503 {ready:false} when not', async () => {
    const { app, plane } = harness();
    let res = await app.inject({ method: 'GET', url: '/v2/health/ready' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ready: true });
    plane.isReady = false;
    res = await app.inject({ method: 'GET', url: '/v2/health/ready' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ ready: false });
  });
});

describe('metadata routes', () => {
  it('serves server metadata at /v2, with or without a trailing slash', async () => {
    const { app } = harness();
    for (const url of ['/v2', '/v2/']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(200);
      // The fake data plane reports none; the HTTP transport adds its own.
      expect(res.json()).toEqual({ name: 'offramp', version: '0.1.0', extensions: ['binary_tensor_data'] });
    }
  });

  it('serves model metadata with and without a version, and 404s an unknown version with its code', async () => {
    const { app } = harness();
    const plain = await app.inject({ method: 'GET', url: `/v2/models/${MODEL}` });
    expect(plain.statusCode).toBe(200);
    expect(plain.json()).toMatchObject({
      name: MODEL,
      versions: [VERSION],
      inputs: [{ name: 'x', datatype: 'FP32', shape: [-1, 2, 2] }],
    });

    const versioned = await app.inject({ method: 'GET', url: `/v2/models/${MODEL}/versions/${VERSION}` });
    expect(versioned.statusCode).toBe(200);
    expect(versioned.json()).toEqual(plain.json());

    const wrong = await app.inject({ method: 'GET', url: `/v2/models/${MODEL}/versions/7` });
    expect(wrong.statusCode).toBe(404);
    expect(wrong.json()).toMatchObject({ code: 'OFFRAMP_MODEL_VERSION_NOT_FOUND' });
  });

  it('answers model ready 200 {name, ready:true} when ready and 400 {ready:false, reason} when not (KServe: 4xx = false)', async () => {
    const { app, plane } = harness();
    let res = await app.inject({ method: 'GET', url: `/v2/models/${MODEL}/ready` });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: MODEL, ready: true });

    res = await app.inject({ method: 'GET', url: `/v2/models/${MODEL}/versions/${VERSION}/ready` });
    expect(res.statusCode).toBe(200);

    plane.modelIsReady = false;
    res = await app.inject({ method: 'GET', url: `/v2/models/${MODEL}/ready` });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ name: MODEL, ready: false, reason: 'the fake model is not ready' });
  });

  it('answers 404 OFFRAMP_MODEL_NOT_FOUND for an unknown model on every model route', async () => {
    const { app } = harness();
    for (const [method, url] of [
      ['GET', '/v2/models/nope'],
      ['GET', '/v2/models/nope/ready'],
      ['GET', '/v2/models/nope/exits'],
    ] as const) {
      const res = await app.inject({ method, url });
      expect(res.statusCode, url).toBe(404);
      expect(res.json(), url).toEqual({ error: "model 'nope' is not served here", code: 'OFFRAMP_MODEL_NOT_FOUND' });
    }
    const infer = await postInfer(app, VALID_BODY, '/v2/models/nope/infer');
    expect(infer.statusCode).toBe(404);
    expect(infer.json()).toMatchObject({ code: 'OFFRAMP_MODEL_NOT_FOUND' });
  });

  it('serves the exits report as JSON', async () => {
    const { app, plane } = harness();
    const res = await app.inject({ method: 'GET', url: `/v2/models/${MODEL}/exits` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual(plane.exits(MODEL));
  });
});

describe('POST infer', () => {
  it('turns a flat-data JSON request into an InferRequest and the response into KServe JSON', async () => {
    const { app, plane } = harness();
    const res = await postInfer(app, { ...VALID_BODY, outputs: [{ name: 'logits' }] });
    expect(res.statusCode).toBe(200);

    const seen = plane.requests[0]!;
    expect(seen.modelName).toBe(MODEL);
    expect(seen.modelVersion).toBeUndefined();
    expect(seen.id).toBe('req-1');
    expect(seen.parameters).toEqual({ priority: 1 });
    expect(seen.inputs).toEqual([{ name: 'x', datatype: 'FP32', shape: [1, 2, 2], data: [1, 2, 3, 4] }]);
    expect(seen.outputs).toEqual([{ name: 'logits' }]);
    expect(seen.signal).toBeInstanceOf(AbortSignal);
    expect(seen.signal!.aborted).toBe(false);

    expect(res.json()).toEqual({
      model_name: MODEL,
      model_version: VERSION,
      id: 'req-1',
      parameters: { early: true, exit_ramp: 0, exit_depth: 0.3, confidence: 0.95 },
      outputs: [
        { name: 'logits', datatype: 'FP32', shape: [1, 3], data: [0.5, -1, 2] },
        { name: 'label', datatype: 'INT64', shape: [1], data: [2] },
        { name: 'exit', datatype: 'INT32', shape: [1], data: [0], parameters: { per_row: true } },
        { name: 'class_name', datatype: 'BYTES', shape: [1], data: ['bag'] },
      ],
    });
  });

  it('flattens nested data in row-major order and passes the URL version through', async () => {
    const { app, plane } = harness();
    const res = await postInfer(
      app,
      {
        inputs: [
          {
            name: 'x',
            shape: [1, 2, 2],
            datatype: 'FP32',
            data: [
              [
                [1, 2],
                [3, 4],
              ],
            ],
          },
          { name: 'words', shape: [2], datatype: 'BYTES', data: [['a', 'b']] },
        ],
      },
      `/v2/models/${MODEL}/versions/${VERSION}/infer`,
    );
    expect(res.statusCode).toBe(200);
    const seen = plane.requests[0]!;
    expect(seen.modelVersion).toBe(VERSION);
    expect(seen.inputs[0]!.data).toEqual([1, 2, 3, 4]);
    expect(seen.inputs[1]!.data).toEqual(['a', 'b']);
    expect(seen.parameters).toEqual({});
    expect(res.json()).toMatchObject({ id: 'generated-id' });
  });

  it('parses the body as JSON whatever its content type (curl -d sends form-urlencoded)', async () => {
    const { app } = harness();
    const res = await app.inject({
      method: 'POST',
      url: `/v2/models/${MODEL}/infer`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: JSON.stringify(VALID_BODY),
    });
    expect(res.statusCode).toBe(200);
  });

  it('answers malformed JSON with 400 OFFRAMP_MALFORMED_JSON carrying the parser reason', async () => {
    const { app, plane } = harness();
    const res = await postInfer(app, '{"inputs": [');
    expect(res.statusCode).toBe(400);
    const body = res.json<{ error: string; code: string }>();
    expect(body.code).toBe('OFFRAMP_MALFORMED_JSON');
    expect(body.error).toMatch(/^request body is not valid JSON: .+/);
    expect(plane.requests).toHaveLength(0);
  });

  it('answers an empty JSON body with 400 OFFRAMP_MALFORMED_JSON', async () => {
    const { app } = harness();
    const res = await postInfer(app, '');
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'OFFRAMP_MALFORMED_JSON' });
  });

  it('answers a body without inputs with 400 OFFRAMP_INVALID_REQUEST naming the field', async () => {
    const { app, plane } = harness();
    const res = await postInfer(app, { id: 'x' });
    expect(res.statusCode).toBe(400);
    const body = res.json<{ error: string; code: string }>();
    expect(body.code).toBe('OFFRAMP_INVALID_REQUEST');
    expect(body.error).toContain("'inputs'");
    expect(plane.requests).toHaveLength(0);
  });

  it.each([
    ['a non-object body', [1, 2], 'the body must be a JSON object'],
    ['a numeric id', { ...VALID_BODY, id: 5 }, "'id'"],
    ['inputs that are not a list', { inputs: {} }, "'inputs' must be a list"],
    ['an input without a name', { inputs: [{ shape: [1], datatype: 'FP32', data: [1] }] }, "'inputs[0].name'"],
    ['an input without a datatype', { inputs: [{ name: 'x', shape: [1], data: [1] }] }, "'inputs[0].datatype'"],
    [
      'a negative dimension',
      { inputs: [{ name: 'x', shape: [-1], datatype: 'FP32', data: [1] }] },
      "'inputs[0].shape[0]'",
    ],
    ['an input without data', { inputs: [{ name: 'x', shape: [1], datatype: 'FP32' }] }, "'inputs[0].data' is missing"],
    [
      'a string in FP32 data',
      { inputs: [{ name: 'x', shape: [2], datatype: 'FP32', data: [1, 'two'] }] },
      "'inputs[0].data' element 1",
    ],
    [
      'a fraction in INT64 data',
      { inputs: [{ name: 'x', shape: [1], datatype: 'INT64', data: [1.5] }] },
      'INT64 data must be integers',
    ],
    [
      'a number in BYTES data',
      { inputs: [{ name: 'x', shape: [1], datatype: 'BYTES', data: [1] }] },
      'BYTES data must be strings',
    ],
    [
      'a number in BOOL data',
      { inputs: [{ name: 'x', shape: [1], datatype: 'BOOL', data: [1] }] },
      'BOOL data must be true/false',
    ],
    ['an object as a parameter value', { ...VALID_BODY, parameters: { priority: { x: 1 } } }, "'parameters.priority'"],
    ['outputs without names', { ...VALID_BODY, outputs: [{}] }, "'outputs[0].name'"],
  ])('answers %s with 400 OFFRAMP_INVALID_REQUEST naming the field', async (_what, payload, fragment) => {
    const { app, plane } = harness();
    const res = await postInfer(app, payload);
    expect(res.statusCode).toBe(400);
    const body = res.json<{ error: string; code: string }>();
    expect(body.code).toBe('OFFRAMP_INVALID_REQUEST');
    expect(body.error).toContain(fragment);
    expect(plane.requests).toHaveLength(0);
  });

  it('rejects data nested deeper than any tensor without overflowing the stack', async () => {
    const { app } = harness(1024 * 1024);
    const deep = `${'['.repeat(10_000)}1${']'.repeat(10_000)}`;
    const res = await postInfer(app, `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":${deep}}]}`);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ code: 'OFFRAMP_INVALID_REQUEST' });
  });

  it('answers a body over maxBodyBytes with 413 OFFRAMP_BODY_TOO_LARGE naming the limit', async () => {
    const { app, plane } = harness(1024);
    const big = {
      inputs: [{ name: 'x', shape: [1000], datatype: 'FP32', data: Array.from({ length: 1000 }, (_, i) => i) }],
    };
    const res = await postInfer(app, big);
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual({
      error: 'request body exceeds the limit of 1024 bytes (server.max_body_bytes)',
      code: 'OFFRAMP_BODY_TOO_LARGE',
    });
    expect(plane.requests).toHaveLength(0);
  });

  it('answers the data plane QUEUE_FULL with 429 and exactly {error, code}', async () => {
    const { app, plane } = harness();
    plane.inferImpl = () => Promise.reject(new OfframpError('OFFRAMP_QUEUE_FULL', { model: MODEL, limit: 256 }));
    const res = await postInfer(app, VALID_BODY);
    expect(res.statusCode).toBe(429);
    expect(res.json()).toEqual({
      error: "the queue of model 'tiny' is full (256 requests waiting); retry later",
      code: 'OFFRAMP_QUEUE_FULL',
    });
  });

  it('answers an unexpected Error with 500 OFFRAMP_INTERNAL and keeps serving', async () => {
    const { app, plane } = harness();
    plane.inferImpl = () => Promise.reject(new TypeError('boom'));
    const failed = await postInfer(app, VALID_BODY);
    expect(failed.statusCode).toBe(500);
    expect(failed.json()).toEqual({ error: 'internal error: boom', code: 'OFFRAMP_INTERNAL' });

    plane.inferImpl = (request) => Promise.resolve(answer(request));
    const next = await postInfer(app, VALID_BODY);
    expect(next.statusCode).toBe(200);
    const live = await app.inject({ method: 'GET', url: '/v2/health/live' });
    expect(live.statusCode).toBe(200);
  });

  it('answers a synchronous throw in a metadata call with 500 OFFRAMP_INTERNAL', async () => {
    const { app, plane } = harness();
    plane.serverMetadata = () => {
      throw new Error('metadata exploded');
    };
    const res = await app.inject({ method: 'GET', url: '/v2' });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({ error: 'internal error: metadata exploded', code: 'OFFRAMP_INTERNAL' });
  });
});

describe('unknown routes', () => {
  it.each([
    ['GET', '/nope'],
    ['GET', `/v2/models/${MODEL}/infer`],
    ['POST', '/v2/health/live'],
    ['DELETE', `/v2/models/${MODEL}`],
  ] as const)('answers %s %s with 404 OFFRAMP_ROUTE_NOT_FOUND in the offramp shape', async (method, url) => {
    const { app } = harness();
    const res = await app.inject({ method, url });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({
      error: `${method} ${url} is not an endpoint of this server`,
      code: 'OFFRAMP_ROUTE_NOT_FOUND',
    });
  });

  it("answers a malformed URL with 400 OFFRAMP_INVALID_REQUEST, not fastify's error shape", async () => {
    const { app } = harness();
    const res = await app.inject({ method: 'GET', url: '/v2/models/%E0%A4%A' });
    expect(res.statusCode).toBe(400);
    expect(Object.keys(res.json<object>()).sort()).toEqual(['code', 'error']);
    expect(res.json()).toMatchObject({ code: 'OFFRAMP_INVALID_REQUEST' });
  });

  it("answers bytes that are not HTTP with 400 OFFRAMP_INVALID_REQUEST, not Node's or fastify's error shape", async () => {
    const { app } = harness();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const { socket, received, ended } = rawConnection(port);
    socket.write('NOT HTTP AT ALL\r\n\r\n');
    await ended;
    expect(received()).toMatch(/^HTTP\/1\.1 400 /);
    const body = JSON.parse(received().slice(received().indexOf('\r\n\r\n') + 4)) as { code: string };
    expect(body.code).toBe('OFFRAMP_INVALID_REQUEST');
  });
});

describe('GET /metrics', () => {
  it("registers prom-client's process metrics and the event-loop lag gauge on the same registry by default", async () => {
    const metrics = createMetrics();
    try {
      const text = await metrics.registry.metrics();
      expect(text).toContain('# TYPE process_cpu_user_seconds_total counter');
      expect(text).toContain('# TYPE nodejs_eventloop_lag_p99_seconds gauge');
      expect(text).toContain('# TYPE offramp_event_loop_lag_seconds gauge');
    } finally {
      metrics.close();
    }
  });

  it('serves the registry as Prometheus text, including a latency observed once', async () => {
    const { app, metrics } = harness();
    metrics.requestLatency.observe({ model: MODEL, exit: exitLabel(-1) }, 0.003);
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(metrics.registry.contentType);
    expect(res.body).toContain('offramp_request_latency_seconds_count{model="tiny",exit="final"} 1');
    expect(res.body).toContain('offramp_request_latency_seconds_bucket{le="0.005",model="tiny",exit="final"} 1');
  });

  it("keeps two registries apart: a second server does not see the first one's observations", async () => {
    const a = harness();
    const b = harness();
    a.metrics.requestsTotal.inc({ model: MODEL, outcome: 'ok' });
    const resA = await a.app.inject({ method: 'GET', url: '/metrics' });
    const resB = await b.app.inject({ method: 'GET', url: '/metrics' });
    expect(resA.body).toContain('offramp_requests_total{model="tiny",outcome="ok"} 1');
    expect(resB.body).not.toContain('offramp_requests_total{model="tiny"');
  });

  it('exports an inactive or "never" ramp as threshold 1 with offramp_ramp_active 0, and never NaN', async () => {
    const { app, metrics, plane } = harness();
    const report = plane.exits(MODEL);
    recordExitsReport(metrics, {
      ...report,
      ramps: [
        ...report.ramps,
        {
          id: 1,
          kind: 'ramp',
          active: true,
          threshold: null,
          computeBefore: 0.6,
          disabled: null,
          exitRate: 0,
          agreement: null,
        },
      ],
      window: { ...report.window, disagreement: null },
    });
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toContain('offramp_ramp_threshold{model="tiny",ramp="0"} 0.9');
    expect(text).toContain('offramp_ramp_active{model="tiny",ramp="0"} 1');
    expect(text).toContain(`offramp_ramp_threshold{model="tiny",ramp="1"} ${INACTIVE_THRESHOLD}`);
    expect(text).toContain('offramp_ramp_active{model="tiny",ramp="1"} 0');
    expect(text).toContain('offramp_window_early_exit_ratio{model="tiny"} 0.4');
    expect(text).not.toContain('offramp_window_disagreement_ratio{');
    expect(text).not.toMatch(/\bNaN\b/);
  });

  it('exports the tuner section: paused, pins, estimates, and counters that advance by what the tuner counted since the last scrape', async () => {
    const { app, metrics, plane } = harness();
    const report = plane.exits(MODEL);
    const estimates = {
      windowRows: 100,
      windowDisagreement: 0.01,
      tuningRows: 400,
      estimatedDisagreement: 0.004,
      upperBound: 0.009,
      estimatedSavings: 0.3,
      hindsightSavings: 0.4,
      fractionOfHindsight: 0.625,
      retunes: 3,
      tightenings: 1,
      rampChanges: 0,
      learning: true,
      feedbackDemand: 'learning' as const,
      lastUtilities: [],
    };
    metrics.onRefresh(() =>
      recordExitsReport(metrics, {
        ...report,
        tuner: {
          kind: 'guarded',
          online: true,
          paused: true,
          pinned: { '0': 0.9 },
          proposed: { '0': 0.8 },
          estimates,
          probeShare: 0.5,
          restored: null,
        },
      }),
    );
    let text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toContain('offramp_tuner_paused{model="tiny"} 1');
    expect(text).toContain('offramp_ramp_pinned{model="tiny",ramp="0"} 1');
    expect(text).toContain('offramp_ramp_head_active{model="tiny",ramp="0"} 1');
    expect(text).toContain('offramp_tuner_estimated_disagreement_ratio{model="tiny"} 0.004');
    expect(text).toContain('offramp_tuner_disagreement_upper_bound_ratio{model="tiny"} 0.009');
    expect(text).toContain('offramp_tuner_expected_latency_savings_ratio{model="tiny"} 0.3');
    expect(text).toContain('offramp_hindsight_latency_savings_ratio{model="tiny"} 0.4');
    expect(text).toContain('offramp_estimated_latency_savings_ratio{model="tiny"} 0.25');
    expect(text).toContain('offramp_ramp_overhead_ratio{model="tiny"} 0.02');
    expect(text).toContain('offramp_probe_share_ratio{model="tiny"} 0.5');
    expect(text).toContain('# TYPE offramp_tuner_retunes_total counter');
    expect(text).toContain('offramp_tuner_retunes_total{model="tiny"} 3');
    expect(text).toContain('offramp_tuner_tightenings_total{model="tiny"} 1');
    expect(text).toContain('offramp_tuner_ramp_changes_total{model="tiny"} 0');
    estimates.retunes = 5;
    text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toContain('offramp_tuner_retunes_total{model="tiny"} 5');
    expect(text).toContain('offramp_tuner_tightenings_total{model="tiny"} 1');
  });

  it('exports no tuner series for a model without an online tuner', async () => {
    const { app, metrics, plane } = harness();
    recordExitsReport(metrics, plane.exits(MODEL));
    const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toContain('offramp_ramp_pinned{model="tiny",ramp="0"} 0');
    expect(text).not.toContain('offramp_tuner_paused{');
    expect(text).not.toContain('offramp_tuner_retunes_total{');
    expect(text).not.toContain('offramp_hindsight_latency_savings_ratio{');
  });
});

const ADMIN_TOKEN = 'an-admin-token-for-tests';

/** Records what the admin routes pass on; answers a fixed report. */
class FakeAdmin implements AdminPlane {
  readonly calls: unknown[][] = [];
  private report(name: string): TunerAdminReport {
    if (name !== MODEL) throw new OfframpError('OFFRAMP_MODEL_NOT_FOUND', { model: name });
    return {
      model: name,
      version: VERSION,
      tuner: {
        kind: 'guarded',
        online: true,
        paused: false,
        pinned: {},
        proposed: {},
        estimates: null,
        probeShare: 1,
        restored: null,
      },
      thresholds: {},
    };
  }
  tunerState(name: string, version?: string): TunerAdminReport {
    this.calls.push(['state', name, version]);
    return this.report(name);
  }
  pauseTuner(name: string, version?: string): TunerAdminReport {
    this.calls.push(['pause', name, version]);
    return this.report(name);
  }
  resumeTuner(name: string, version?: string): TunerAdminReport {
    this.calls.push(['resume', name, version]);
    return this.report(name);
  }
  pinThresholds(
    name: string,
    version: string | undefined,
    thresholds: ReadonlyMap<number, number | null>,
  ): TunerAdminReport {
    this.calls.push(['pin', name, version, [...thresholds]]);
    return this.report(name);
  }
  unpinThresholds(name: string, version?: string): TunerAdminReport {
    this.calls.push(['unpin', name, version]);
    return this.report(name);
  }
  injectFault(
    name: string,
    version: string | undefined,
    fault: FaultKind,
    worker: number | undefined,
  ): Promise<FaultInjectionReport> {
    this.calls.push(['fault', name, version, fault, worker]);
    this.report(name);
    return Promise.resolve({ model: name, version: VERSION, fault, worker: worker ?? 0, failed: true });
  }
}

describe('admin routes', () => {
  const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };

  it('answer OFFRAMP_ADMIN_DISABLED (403) when the server has no admin controls or no token', async () => {
    for (const h of [harness(), harness(64 * 1024, { plane: new FakeAdmin(), token: null })]) {
      const res = await h.app.inject({ method: 'POST', url: `/v2/models/${MODEL}/admin/tuner/pause`, headers: auth });
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ code: 'OFFRAMP_ADMIN_DISABLED' });
    }
  });

  it('need the bearer token: 401 OFFRAMP_UNAUTHORIZED otherwise, and the controls are not called', async () => {
    const admin = new FakeAdmin();
    const { app } = harness(64 * 1024, { plane: admin, token: ADMIN_TOKEN });
    for (const authorization of [
      undefined,
      ADMIN_TOKEN,
      `Basic ${ADMIN_TOKEN}`,
      `Bearer ${ADMIN_TOKEN.toUpperCase()}`,
      'Bearer ',
      `Bearer ${ADMIN_TOKEN} extra`,
    ]) {
      const res = await app.inject({
        method: 'GET',
        url: `/v2/models/${MODEL}/admin/tuner`,
        headers: authorization === undefined ? {} : { authorization },
      });
      expect(res.statusCode, String(authorization)).toBe(401);
      expect(res.json()).toMatchObject({ code: 'OFFRAMP_UNAUTHORIZED' });
    }
    expect(admin.calls).toEqual([]);
    const ok = await app.inject({
      method: 'GET',
      url: `/v2/models/${MODEL}/versions/${VERSION}/admin/tuner`,
      headers: { authorization: `bearer  ${ADMIN_TOKEN}` },
    });
    expect(ok.statusCode).toBe(200);
    expect(admin.calls).toEqual([['state', MODEL, VERSION]]);
  });

  it('compare tokens whatever their lengths', () => {
    expect(tokenMatches(ADMIN_TOKEN, ADMIN_TOKEN)).toBe(true);
    expect(tokenMatches('', ADMIN_TOKEN)).toBe(false);
    expect(tokenMatches(`${ADMIN_TOKEN}-longer`, ADMIN_TOKEN)).toBe(false);
  });

  it('route each call to its control; pause and resume take no body, even with a JSON content type', async () => {
    const admin = new FakeAdmin();
    const { app } = harness(64 * 1024, { plane: admin, token: ADMIN_TOKEN });
    const json = { ...auth, 'content-type': 'application/json' };
    expect(
      (await app.inject({ method: 'POST', url: `/v2/models/${MODEL}/admin/tuner/pause`, headers: json })).statusCode,
    ).toBe(200);
    expect(
      (await app.inject({ method: 'POST', url: `/v2/models/${MODEL}/admin/tuner/resume`, headers: auth })).statusCode,
    ).toBe(200);
    const put = await app.inject({
      method: 'PUT',
      url: `/v2/models/${MODEL}/admin/thresholds`,
      headers: json,
      payload: '{"thresholds": {"0": 0.99, "3": null}}',
    });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toMatchObject({ model: MODEL, tuner: { kind: 'guarded' } });
    expect(
      (await app.inject({ method: 'DELETE', url: `/v2/models/${MODEL}/admin/thresholds`, headers: auth })).statusCode,
    ).toBe(200);
    expect(admin.calls).toEqual([
      ['pause', MODEL, undefined],
      ['resume', MODEL, undefined],
      [
        'pin',
        MODEL,
        undefined,
        [
          [0, 0.99],
          [3, null],
        ],
      ],
      ['unpin', MODEL, undefined],
    ]);
    // The KServe routes still refuse an empty JSON body.
    const infer = await app.inject({
      method: 'POST',
      url: `/v2/models/${MODEL}/infer`,
      headers: { 'content-type': 'application/json' },
    });
    expect(infer.json()).toMatchObject({ code: 'OFFRAMP_MALFORMED_JSON' });
  });

  it('refuse a thresholds body that is missing or not {"thresholds": {id: number | null}} with OFFRAMP_INVALID_ADMIN_REQUEST', async () => {
    const admin = new FakeAdmin();
    const { app } = harness(64 * 1024, { plane: admin, token: ADMIN_TOKEN });
    for (const payload of [
      '',
      '[]',
      '{}',
      '{"thresholds": 0.9}',
      '{"thresholds": {"a": 0.9}}',
      '{"thresholds": {"0": "0.9"}}',
      '{"thresholds": {"0": 0.9}, "pin": true}',
    ]) {
      const res = await app.inject({
        method: 'PUT',
        url: `/v2/models/${MODEL}/admin/thresholds`,
        headers: { ...auth, 'content-type': 'application/json' },
        payload,
      });
      expect(res.statusCode, payload).toBe(400);
      expect(res.json(), payload).toMatchObject({ code: 'OFFRAMP_INVALID_ADMIN_REQUEST' });
    }
    expect(admin.calls).toEqual([]);
  });
});

describe('client disconnects', () => {
  it('aborts the request signal with OFFRAMP_CANCELLED when the client closes the connection mid-request', async () => {
    const { app, plane } = harness();
    let entered!: () => void;
    const inferStarted = new Promise<void>((resolve) => (entered = resolve));
    const abortReason = new Promise<unknown>((resolveReason) => {
      plane.inferImpl = (request) =>
        new Promise<InferResponse>((_resolve, reject) => {
          const signal = request.signal!;
          signal.addEventListener('abort', () => {
            resolveReason(signal.reason);
            reject(signal.reason as Error);
          });
          entered();
        });
    });

    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const client = httpRequest({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: `/v2/models/${MODEL}/infer`,
      headers: { 'content-type': 'application/json' },
    });
    client.on('error', () => {}); // the destroy below surfaces as an error on the client side
    client.end(JSON.stringify(VALID_BODY));

    await inferStarted;
    client.destroy();
    const reason = await abortReason;
    expect(OfframpError.is(reason, 'OFFRAMP_CANCELLED')).toBe(true);

    // The server is still fine afterwards.
    const live = await app.inject({ method: 'GET', url: '/v2/health/live' });
    expect(live.statusCode).toBe(200);
  });

  it('does not abort the signal of a request that was answered', async () => {
    const { app, plane } = harness();
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const client = httpRequest(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: `/v2/models/${MODEL}/infer`,
          headers: { 'content-type': 'application/json' },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode));
        },
      );
      client.on('error', reject);
      client.end(JSON.stringify(VALID_BODY));
    });
    expect(status).toBe(200);
    expect(plane.requests[0]!.signal!.aborted).toBe(false);
  });
});

/** A raw connection that collects everything the server sends; `ended` resolves when it closes. */
function rawConnection(port: number): { socket: Socket; received: () => string; ended: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received += chunk));
  const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  return { socket, received: () => received, ended };
}

describe('closing', () => {
  it('answers a request that arrives after close() began with 503 OFFRAMP_SHUTTING_DOWN, and finishes the one in flight', async () => {
    const { app, plane } = harness();
    let release!: () => void;
    let entered!: () => void;
    const inferStarted = new Promise<void>((resolve) => (entered = resolve));
    plane.inferImpl = (request) =>
      new Promise<InferResponse>((resolve) => {
        release = () => resolve(answer(request));
        entered();
      });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;

    const inFlight = rawConnection(port);
    const body = JSON.stringify(VALID_BODY);
    inFlight.socket.write(
      `POST /v2/models/${MODEL}/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await inferStarted;
    // A second connection whose request has begun (its request line is in) but not ended: close()
    // keeps it (it is not idle), so the rest of its request reaches the server while it closes.
    const late = rawConnection(port);
    await new Promise<void>((resolve) => late.socket.once('connect', resolve));
    late.socket.write('GET /v2/health/live HTTP/1.1\r\n');
    // Turns of the event loop (each polls for I/O) for the server, in this process, to read it.
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));

    const closed = app.close();
    // The listener closes right after the preClose hooks ran, i.e. once the server counts as closing.
    while (app.server.listening) await new Promise((resolve) => setImmediate(resolve));
    late.socket.write('host: x\r\n\r\n');
    await late.ended;
    release();
    await closed;
    await inFlight.ended;

    expect(inFlight.received()).toMatch(/^HTTP\/1\.1 200 /);
    // An answer while closing tells a keep-alive client not to send another on this connection.
    expect(inFlight.received()).toMatch(/\r\nconnection: close\r\n/i);
    expect(late.received()).toMatch(/^HTTP\/1\.1 503 /);
    expect(late.received()).toContain('"code":"OFFRAMP_SHUTTING_DOWN"');
  });
});

describe('admission before the body is read', () => {
  const queueFull = () => new OfframpError('OFFRAMP_QUEUE_FULL', { model: MODEL, limit: 1 });

  it('answers the data plane refusal (429) without parsing the body or calling infer', async () => {
    const { app, plane } = harness();
    const asked: string[] = [];
    plane.admissionImpl = (name) => {
      asked.push(name);
      return queueFull();
    };
    // A body that would be a 400 if it were parsed: the refusal comes first.
    for (const path of [`/v2/models/${MODEL}/infer`, `/v2/models/${MODEL}/versions/${VERSION}/infer`]) {
      const res = await postInfer(app, '{"inputs": [not json', path);
      expect(res.statusCode, path).toBe(429);
      expect(res.json()).toMatchObject({ code: 'OFFRAMP_QUEUE_FULL' });
    }
    expect(asked).toEqual([MODEL, MODEL]);
    expect(plane.requests).toHaveLength(0);
    // Admitted again: the same body is parsed and refused for what it is.
    plane.admissionImpl = () => null;
    expect((await postInfer(app, '{"inputs": [not json')).json()).toMatchObject({ code: 'OFFRAMP_MALFORMED_JSON' });
    expect((await postInfer(app, VALID_BODY)).statusCode).toBe(200);
  });

  it('keeps the keep-alive connection: a refused request with an unread body, then an admitted one on the same socket', async () => {
    const { app, plane } = harness(4 * 1024 * 1024);
    let refusals = 1;
    plane.admissionImpl = () => (refusals-- > 0 ? queueFull() : null);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const { socket, received } = rawConnection(port);
    const post = (body: string) =>
      `POST /v2/models/${MODEL}/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n` +
      `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    // 2 MB of valid JSON: far more than the socket buffers hold, so most of it arrives after the
    // refusal was sent, and must be read off the wire and dropped before the next request.
    const big = JSON.stringify({ ...VALID_BODY, pad: 'x'.repeat(2 * 1024 * 1024) });
    socket.write(post(big));
    socket.write(post(JSON.stringify(VALID_BODY)));
    const statuses = () => [...received().matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    await new Promise<void>((resolve, reject) => {
      socket.on('data', () => {
        if (statuses().length === 2 && received().trimEnd().endsWith('}')) resolve();
      });
      socket.on('close', () => reject(new Error(`the connection closed; received: ${received().slice(0, 500)}`)));
    });
    expect(statuses()).toEqual([429, 200]);
    expect(received()).not.toMatch(/connection: close/i);
    expect(socket.destroyed).toBe(false);
    socket.destroy();
    expect(plane.requests.map((r) => r.id)).toEqual(['req-1']);
  });
});
