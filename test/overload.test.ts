/**
 * Overload is contained: a real server on the bundled model, ten times as many closed-loop
 * clients (HTTP and gRPC, loopback) as its queue holds. Asserted on counts and statuses, never on
 * time: every answer is a 200 with the right class, or a coded 429 / RESOURCE_EXHAUSTED (refused)
 * or 504 / DEADLINE_EXCEEDED (timed out in the queue); the queue never holds more than its bound;
 * refusals come before the body is parsed; each request is counted once in
 * `offramp_requests_total`; memory stays bounded; and once the load stops a request is served
 * normally. Bounded: a fixed number of requests per client.
 */
import { Agent, request as httpRequest } from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadInferenceService } from '../src/grpc/proto.js';
import { startServer, type RunningServer } from '../src/server.js';
import { bundledConfig, testImages } from './helpers/bundled.js';

const QUEUE_BOUND = 16;
const HTTP_CLIENTS = 10 * QUEUE_BOUND;
const GRPC_CLIENTS = QUEUE_BOUND;
const REQUESTS_PER_CLIENT = 4;
/** Distinct request bodies, sent round-robin. */
const BODIES = 4;
/** Rows per request: heavy enough that the worker cannot keep up with what the clients send. */
const ROWS = 32;
/** RSS growth over the run that counts as unbounded (generous: worker threads, GC timing). */
const RSS_GROWTH_LIMIT = 512 * 1024 * 1024;

let server: RunningServer;
let grpcClient: grpc.Client;
let bodies: string[];
let pixelRows: number[][];
/** The classes a quiet server answers for each body's rows. */
let referenceClasses: string[];
const agent = new Agent({ keepAlive: true, maxSockets: HTTP_CLIENTS });

interface Answer {
  status: number;
  json: { code?: string; outputs?: { name: string; data: number[] }[] };
}

function post(body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port: server.httpPort,
        path: '/v2/models/fmnist/infer',
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Answer['json'],
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

const classesOf = (answer: Answer): string =>
  (answer.json.outputs?.find((o) => o.name === 'class')?.data ?? []).join(',');

interface GrpcReply {
  outputs: { name: string; contents: { int64_contents?: string[] } | null }[];
}

type UnaryMethod = (request: object, callback: (err: grpc.ServiceError | null, reply?: GrpcReply) => void) => void;

function modelInfer(body: number): Promise<{ err: grpc.ServiceError | null; classes: string }> {
  return new Promise((resolve) => {
    const method = (grpcClient as unknown as Record<string, UnaryMethod>)['ModelInfer']!;
    const request = {
      model_name: 'fmnist',
      inputs: [
        { name: 'pixels', datatype: 'UINT8', shape: [ROWS, 1, 28, 28], contents: { uint_contents: pixelRows[body] } },
      ],
    };
    method.call(grpcClient, request, (err, reply) =>
      resolve({
        err,
        classes: (reply?.outputs.find((o) => o.name === 'class')?.contents?.int64_contents ?? []).join(','),
      }),
    );
  });
}

async function requestsTotal(): Promise<Record<string, number>> {
  const text = await server.metrics.registry.metrics();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^offramp_requests_total\{model="fmnist",outcome="(\w+)"\} (\d+)$/gm))
    out[m[1]!] = Number(m[2]);
  return out;
}

beforeAll(async () => {
  // Vanilla serving (no ramps): an answer's class cannot depend on which rows shared its batch.
  const config = bundledConfig('overload.test.yaml', [
    'tuner: { kind: off }',
    `batching: { max_batch_size: 8, max_queue_size: ${QUEUE_BOUND} }`,
  ]);
  server = await startServer(config, { version: 'test' });
  const ServiceClient = grpc.makeClientConstructor(loadInferenceService(), 'GRPCInferenceService');
  grpcClient = new ServiceClient(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure());
  const size = ROWS * 784;
  const images = await testImages(BODIES * ROWS, 200);
  pixelRows = Array.from({ length: BODIES }, (_, i) =>
    Array.from((images.data as Float32Array).subarray(i * size, (i + 1) * size), (v) => Math.round(v * 255)),
  );
  bodies = pixelRows.map((data) =>
    JSON.stringify({ inputs: [{ name: 'pixels', shape: [ROWS, 1, 28, 28], datatype: 'UINT8', data }] }),
  );
  referenceClasses = [];
  for (const body of bodies) referenceClasses.push(classesOf(await post(body)));
}, 60_000);

afterAll(async () => {
  agent.destroy();
  grpcClient?.close();
  await server?.close();
});

describe('ten times the load the queue holds', () => {
  it('keeps the queue bounded, refuses the excess with coded 429s before parsing, and serves normally after', async () => {
    const runner = server.dataPlane.servedModels[0]!.runner;
    const dataPlane = server.dataPlane;
    // Count the requests whose body was parsed and reached the data plane (the real infer, wrapped).
    let parsed = 0;
    const infer = dataPlane.infer.bind(dataPlane);
    dataPlane.infer = (request) => {
      parsed++;
      return infer(request);
    };
    let maxQueued = 0;
    const sample = () => (maxQueued = Math.max(maxQueued, runner.queuedRequests));
    const sampler = setInterval(sample, 1);
    const before = await requestsTotal();
    const rssBefore = process.memoryUsage().rss;

    const httpStatuses = new Map<string, number>();
    const grpcStatuses = new Map<string, number>();
    const wrongAnswers: string[] = [];
    const count = (map: Map<string, number>, key: string) => map.set(key, (map.get(key) ?? 0) + 1);
    let next = 0;
    try {
      await Promise.all([
        ...Array.from({ length: HTTP_CLIENTS }, async () => {
          for (let i = 0; i < REQUESTS_PER_CLIENT; i++) {
            const body = next++ % BODIES;
            const answer = await post(bodies[body]!);
            sample();
            count(httpStatuses, `${answer.status} ${answer.json.code ?? ''}`.trim());
            if (answer.status === 200 && classesOf(answer) !== referenceClasses[body])
              wrongAnswers.push(`body ${body}: classes ${classesOf(answer)}, expected ${referenceClasses[body]}`);
          }
        }),
        ...Array.from({ length: GRPC_CLIENTS }, async () => {
          for (let i = 0; i < REQUESTS_PER_CLIENT; i++) {
            const body = next++ % BODIES;
            const { err, classes } = await modelInfer(body);
            sample();
            count(
              grpcStatuses,
              err ? `${grpc.status[err.code]} ${String(err.metadata.get('offramp-code')[0] ?? '')}`.trim() : 'OK',
            );
            if (!err && classes !== referenceClasses[body])
              wrongAnswers.push(`gRPC body ${body}: classes ${classes}, expected ${referenceClasses[body]}`);
          }
        }),
      ]);
    } finally {
      clearInterval(sampler);
      dataPlane.infer = infer;
    }
    const summary = JSON.stringify({ http: [...httpStatuses], grpc: [...grpcStatuses], parsed, maxQueued });

    // Every answer is a right 200 or one of the coded overload answers.
    expect(wrongAnswers, summary).toEqual([]);
    const httpAllowed = ['200', '429 OFFRAMP_QUEUE_FULL', '429 OFFRAMP_OVERLOADED', '504 OFFRAMP_TIMED_OUT_IN_QUEUE'];
    expect(
      [...httpStatuses.keys()].filter((k) => !httpAllowed.includes(k)),
      summary,
    ).toEqual([]);
    const grpcAllowed = [
      'OK',
      'RESOURCE_EXHAUSTED OFFRAMP_QUEUE_FULL',
      'RESOURCE_EXHAUSTED OFFRAMP_OVERLOADED',
      'DEADLINE_EXCEEDED OFFRAMP_TIMED_OUT_IN_QUEUE',
    ];
    expect(
      [...grpcStatuses.keys()].filter((k) => !grpcAllowed.includes(k)),
      summary,
    ).toEqual([]);
    const total = (HTTP_CLIENTS + GRPC_CLIENTS) * REQUESTS_PER_CLIENT;
    const sum = (map: Map<string, number>, keys: string[]) => keys.reduce((s, k) => s + (map.get(k) ?? 0), 0);
    const ok = sum(httpStatuses, ['200']) + sum(grpcStatuses, ['OK']);
    const refused =
      sum(
        httpStatuses,
        httpAllowed.filter((k) => k.startsWith('429')),
      ) +
      sum(
        grpcStatuses,
        grpcAllowed.filter((k) => k.startsWith('RESOURCE')),
      );
    const timedOut = total - ok - refused;
    expect(ok, summary).toBeGreaterThan(0);
    expect(refused, summary).toBeGreaterThan(0);

    // The queue held at most its bound.
    expect(maxQueued, summary).toBeLessThanOrEqual(QUEUE_BOUND);
    // Refusals came before parsing: fewer bodies reached the data plane than requests were sent,
    // the difference all refused.
    expect(parsed, summary).toBeLessThan(total);
    expect(total - parsed, summary).toBeLessThanOrEqual(refused);
    // Each request counted once, its refusal too.
    const after = await requestsTotal();
    const delta = (outcome: string) => (after[outcome] ?? 0) - (before[outcome] ?? 0);
    expect({ ok: delta('ok'), rejected: delta('rejected'), timed_out: delta('timed_out') }, summary).toEqual({
      ok,
      rejected: refused,
      timed_out: timedOut,
    });
    expect(process.memoryUsage().rss - rssBefore, summary).toBeLessThan(RSS_GROWTH_LIMIT);

    // The load is gone: the next requests are served, right.
    expect(runner.queuedRequests).toBe(0);
    for (let body = 0; body < BODIES; body++) {
      const answer = await post(bodies[body]!);
      expect(answer.status, JSON.stringify(answer.json)).toBe(200);
      expect(classesOf(answer)).toBe(referenceClasses[body]);
    }
  }, 120_000);
});
