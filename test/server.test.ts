/**
 * The whole server on the bundled model: real sockets, real HTTP and gRPC clients, the real
 * engine with worker threads. What must hold end to end, not per layer.
 */
import { spawnSync } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../src/server.js';
import { loadInferenceService } from '../src/grpc/proto.js';
import { bundledConfig, testImages } from './helpers/bundled.js';

let server: RunningServer;
let base: string;
let client: grpc.Client;

const ServiceClient = grpc.makeClientConstructor(loadInferenceService(), 'GRPCInferenceService');

function rpc<T>(method: string, request: object): Promise<T> {
  const fn = (
    client as unknown as Record<string, (r: object, cb: (e: grpc.ServiceError | null, v?: unknown) => void) => void>
  )[method]!;
  return new Promise((resolve, reject) =>
    fn.call(client, request, (err, res) => (err ? reject(err) : resolve(res as T))),
  );
}

async function infer(body: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${base}/v2/models/fmnist/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  const config = bundledConfig('server.test.yaml', [
    'tuner: { kind: static }',
    'batching: { max_batch_size: 8, max_queue_delay_ms: 20 }',
  ]);
  server = await startServer(config, { version: 'test' });
  base = `http://127.0.0.1:${server.httpPort}`;
  client = new ServiceClient(`127.0.0.1:${server.grpcPort}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await server?.close();
});

describe('offramp server on the bundled model', () => {
  it('answers a KServe v2 HTTP infer with probabilities, class, label and exit parameters', async () => {
    const image = await testImages(1, 0);
    const pixels = Array.from(image.data as Float32Array, (v) => Math.round(v * 255));
    const { status, json } = await infer({
      id: 'one',
      inputs: [{ name: 'pixels', shape: [1, 1, 28, 28], datatype: 'UINT8', data: pixels }],
    });
    expect(status).toBe(200);
    expect(json).toMatchObject({ model_name: 'fmnist', id: 'one' });
    const parameters = json['parameters'] as Record<string, unknown>;
    expect(typeof parameters['early']).toBe('boolean');
    expect(parameters['exit_depth']).toBeGreaterThan(0);
    expect(parameters['exit_depth']).toBeLessThanOrEqual(1);
    const outputs = json['outputs'] as { name: string; data: unknown[] }[];
    expect(outputs.map((o) => o.name)).toEqual(['probabilities', 'class', 'label', 'exit_ramp', 'confidence']);
    // Test image 0 of Fashion-MNIST is an ankle boot (class 9).
    expect(outputs.find((o) => o.name === 'label')?.data).toEqual(['Ankle boot']);
  });

  it('answers gRPC ModelInfer with raw_input_contents in raw_output_contents', async () => {
    const image = await testImages(2, 0);
    const raw = Buffer.from((image.data as Float32Array).buffer);
    const reply = await rpc<{
      outputs: { name: string; datatype: string }[];
      raw_output_contents: Buffer[];
      parameters: Record<string, unknown>;
    }>('ModelInfer', {
      model_name: 'fmnist',
      inputs: [{ name: 'pixels', datatype: 'FP32', shape: [2, 1, 28, 28] }],
      raw_input_contents: [raw],
    });
    const classIndex = reply.outputs.findIndex((o) => o.name === 'class');
    const classes = new BigInt64Array(new Uint8Array(reply.raw_output_contents[classIndex]!).buffer);
    expect(Number(classes[0])).toBe(9);
    expect(reply.parameters['rows']).toBeDefined();
  });

  it('a bad request in the same batch as good ones gets a coded error and disturbs none of them', async () => {
    const images = await testImages(4, 10);
    const rows = Array.from({ length: 4 }, (_, i) =>
      Array.from((images.data as Float32Array).subarray(i * 784, (i + 1) * 784)),
    );
    const good = rows.map((data) =>
      infer({ inputs: [{ name: 'pixels', shape: [1, 1, 28, 28], datatype: 'FP32', data }] }),
    );
    const badShape = infer({ inputs: [{ name: 'pixels', shape: [1, 28, 28], datatype: 'FP32', data: rows[0] }] });
    const badCount = infer({ inputs: [{ name: 'pixels', shape: [2, 1, 28, 28], datatype: 'FP32', data: rows[0] }] });
    const badJson = fetch(`${base}/v2/models/fmnist/infer`, { method: 'POST', body: '{"inputs": [' }).then(
      async (r) => ({ status: r.status, json: (await r.json()) as Record<string, unknown> }),
    );
    const results = await Promise.all([...good, badShape, badCount, badJson]);
    expect(results.slice(0, 4).map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(results.slice(4).map((r) => [r.status, r.json['code']])).toEqual([
      [400, 'OFFRAMP_WRONG_SHAPE'],
      [400, 'OFFRAMP_ELEMENT_COUNT_MISMATCH'],
      [400, 'OFFRAMP_MALFORMED_JSON'],
    ]);
  });

  it('answers a request with several rows once all its rows are decided', async () => {
    const images = await testImages(5, 20);
    const { status, json } = await infer({
      inputs: [
        { name: 'pixels', shape: [5, 1, 28, 28], datatype: 'FP32', data: Array.from(images.data as Float32Array) },
      ],
    });
    expect(status).toBe(200);
    const exitRamp = (json['outputs'] as { name: string; data: number[] }[]).find((o) => o.name === 'exit_ramp');
    expect(exitRamp?.data).toHaveLength(5);
  });

  it('shows exits and metrics for the served traffic', async () => {
    const exits = (await (await fetch(`${base}/v2/models/fmnist/exits`)).json()) as {
      ramps: { active: boolean }[];
      window: { size: number };
    };
    expect(exits.ramps.some((r) => r.active)).toBe(true);
    expect(exits.window.size).toBeGreaterThan(0);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/offramp_requests_total\{model="fmnist",outcome="ok"\} \d+/);
    expect(metrics).toMatch(/offramp_batch_size_count\{model="fmnist"\} \d+/);
  });

  // Prometheus' own lint on the live exposition, after traffic (so every labelled series exists).
  // promtool comes from Debian's `prometheus` package, which .ci/run installs; a missing promtool
  // fails this test rather than skipping it.
  it('publishes /metrics that promtool check metrics accepts', async () => {
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
    if (check.error) throw new Error(`promtool not runnable (apt-get install prometheus): ${check.error.message}`);
    expect(check.stdout + check.stderr).toBe('');
    expect(check.status).toBe(0);
  });
});
