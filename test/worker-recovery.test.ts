/**
 * Executor worker recovery, end to end: a real server on the bundled model, real worker threads
 * and onnxruntime, faults injected through the admin endpoint (`server.fault_injection`), which
 * really crash (an uncaught exception on the worker's thread) or really hang (a spinning thread)
 * a worker. What must hold: every request is answered, the worker is replaced, readiness says
 * when no worker can take work, and a model whose workers keep failing is reported not ready.
 */
import { cp, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { loadInferenceService } from '../src/grpc/proto.js';
import { startServer, type RunningServer } from '../src/server.js';
import { BUNDLED_DIR, bundledConfig, testImages } from './helpers/bundled.js';

const TOKEN = 'worker-recovery-admin-token';
/** No request may wait this long; a test that would hang fails instead. */
const ANSWER_WITHIN_MS = 60_000;
const MODEL_LINES = ['tuner: { kind: static }', 'slo: { latency_ms: 60000 }', 'batching: { max_batch_size: 8 }'];

interface Served {
  server: RunningServer;
  base: string;
  logs: string[];
}

const running: Served[] = [];
const tmpDirs: string[] = [];

afterEach(async () => {
  for (const s of running.splice(0)) await s.server.close();
  for (const dir of tmpDirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function serve(
  options: {
    workers: number;
    workerTimeoutMs?: number;
    faultInjection?: boolean;
    modelDir?: string;
    modelLines?: string[];
  } = { workers: 1 },
): Promise<Served> {
  const server = [
    'http_port: 0, grpc_port: 0, host: 127.0.0.1, intra_op_threads: 1',
    `workers: ${options.workers}`,
    `admin_token: ${TOKEN}`,
    `fault_injection: ${options.faultInjection ?? true}`,
    `worker_timeout_ms: ${options.workerTimeoutMs ?? 30000}`,
  ].join(', ');
  const bundled = bundledConfig('worker-recovery.test.yaml', options.modelLines ?? MODEL_LINES, server);
  const dir = options.modelDir;
  const config = dir ? { ...bundled, models: bundled.models.map((m) => ({ ...m, path: dir })) } : bundled;
  const logs: string[] = [];
  const started = await startServer(config, { version: 'test', log: (line) => logs.push(line) });
  const served = { server: started, base: `http://127.0.0.1:${started.httpPort}`, logs };
  running.push(served);
  return served;
}

interface Answer {
  status: number;
  json: Record<string, unknown>;
}

async function call(s: Served, method: string, path: string, body?: unknown): Promise<Answer> {
  const res = await fetch(`${s.base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(ANSWER_WITHIN_MS),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

let pixels: number[][] | undefined;
async function image(i: number): Promise<number[]> {
  if (!pixels) {
    const images = await testImages(16, 40);
    const data = images.data as Float32Array;
    pixels = Array.from({ length: 16 }, (_, k) => Array.from(data.subarray(k * 784, (k + 1) * 784)));
  }
  return pixels[i % 16] as number[];
}

async function infer(s: Served, i: number): Promise<Answer> {
  return call(s, 'POST', '/v2/models/fmnist/infer', {
    inputs: [{ name: 'pixels', shape: [1, 1, 28, 28], datatype: 'FP32', data: await image(i) }],
  });
}

const fault = (s: Served, kind: string, worker?: number) =>
  call(s, 'POST', '/v2/models/fmnist/admin/faults', { fault: kind, ...(worker === undefined ? {} : { worker }) });

/** offramp_worker_restarts_total by cause (absent series: 0). */
async function restarts(s: Served): Promise<Record<string, number>> {
  const text = await (await fetch(`${s.base}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^offramp_worker_restarts_total\{model="fmnist",cause="(\w+)"\} (\d+)$/gm))
    out[m[1] as string] = Number(m[2]);
  return out;
}

async function readyWorkersGauge(s: Served): Promise<number | undefined> {
  const text = await (await fetch(`${s.base}/metrics`)).text();
  const m = /^offramp_ready_workers\{model="fmnist"\} (\d+)$/m.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Polls until `check` holds (every 20 ms, at most ANSWER_WITHIN_MS); fails the test otherwise. */
async function until(what: string, check: () => Promise<boolean>): Promise<void> {
  const giveUpAt = Date.now() + ANSWER_WITHIN_MS;
  while (!(await check())) {
    if (Date.now() > giveUpAt) throw new Error(`gave up waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const ServiceClient = grpc.makeClientConstructor(loadInferenceService(), 'GRPCInferenceService');
function grpcReady(s: Served): Promise<{ server: boolean; model: boolean }> {
  const client = new ServiceClient(`127.0.0.1:${s.server.grpcPort}`, grpc.credentials.createInsecure());
  const rpc = (method: string, request: object) =>
    new Promise<{ ready: boolean }>((resolve, reject) =>
      (
        client as unknown as Record<
          string,
          (r: object, cb: (e: grpc.ServiceError | null, v?: { ready: boolean }) => void) => void
        >
      )[method]!.call(client, request, (err, res) => (err ? reject(err) : resolve(res as { ready: boolean }))),
    );
  return Promise.all([rpc('ServerReady', {}), rpc('ModelReady', { name: 'fmnist' })])
    .then(([server, model]) => ({ server: server.ready, model: model.ready }))
    .finally(() => client.close());
}

describe('executor worker recovery', () => {
  it('a worker crashed while requests flow is replaced: every request is answered, 200 or the retryable coded error', async () => {
    const s = await serve({ workers: 2 });
    const answers: Answer[] = [];
    let stop = false;
    let crashedAt = -1;
    // Eight clients, each sending one request after another, until told to stop.
    const clients = Array.from({ length: 8 }, async (_, c) => {
      for (let i = 0; !stop; i++) answers.push(await infer(s, c * 31 + i));
    });
    try {
      await until('requests flow', () => Promise.resolve(answers.length >= 20));
      const crash = await fault(s, 'crash-worker', 0);
      crashedAt = answers.length;
      expect(crash.status).toBe(200);
      expect(crash.json).toEqual({ model: 'fmnist', version: '1', fault: 'crash-worker', worker: 0, failed: true });
      // Traffic goes on through the crash and the restart; then the replaced worker serves again.
      await until('the crashed worker is back', () => Promise.resolve(s.logs.some((l) => /worker 0 is back/.test(l))));
      const afterBack = answers.length;
      await until('requests flow after the restart', () => Promise.resolve(answers.length >= afterBack + 40));
    } finally {
      stop = true;
      await Promise.allSettled(clients);
    }
    await Promise.all(clients);

    for (const a of answers) {
      if (a.status === 200) continue;
      // Only rows of the crashed batch that could not be retried fail, with the retryable code.
      expect([a.status, a.json['code']]).toEqual([503, 'OFFRAMP_EXECUTOR_FAILED']);
      expect(String(a.json['error'])).toMatch(/worker 0 crash: .*injected fault: crash-worker/);
    }
    expect(answers.slice(crashedAt).filter((a) => a.status === 200).length).toBeGreaterThan(30);
    const fresh = await Promise.all(Array.from({ length: 6 }, (_, i) => infer(s, i)));
    expect(fresh.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(await restarts(s)).toEqual({ crash: 1 });
    expect(await readyWorkersGauge(s)).toBe(2);
    expect(
      s.logs.some((l) => /fmnist: executor: worker 0 failed \(crash: .*\); .*; restarting it in \d+ ms/.test(l)),
    ).toBe(true);
  });

  it('with one worker, readiness is 503 while it is down and 200 again once it is back; a request sent meanwhile is served', async () => {
    const s = await serve({ workers: 1 });
    expect((await call(s, 'GET', '/v2/health/ready')).status).toBe(200);
    const crash = await fault(s, 'crash-worker');
    expect(crash.json['failed']).toBe(true);
    // The pool has seen the crash; the replacement waits out its backoff, then loads the model.
    const [health, model, metadata, viaGrpc] = await Promise.all([
      call(s, 'GET', '/v2/health/ready'),
      call(s, 'GET', '/v2/models/fmnist/ready'),
      call(s, 'GET', '/v2/models/fmnist'),
      grpcReady(s),
    ]);
    expect([health.status, health.json]).toEqual([503, { ready: false }]);
    expect([model.status, model.json]).toEqual([
      400,
      { name: 'fmnist', ready: false, reason: 'every executor worker is restarting' },
    ]);
    expect((metadata.json['parameters'] as Record<string, unknown>)['not_ready_reason']).toBe(
      'every executor worker is restarting',
    );
    expect(viaGrpc).toEqual({ server: false, model: false });
    // Queued, not refused: the restart is brief.
    const meanwhile = infer(s, 3);
    await until('the server is ready again', async () => (await call(s, 'GET', '/v2/health/ready')).status === 200);
    expect((await meanwhile).status).toBe(200);
    expect((await call(s, 'GET', '/v2/models/fmnist/ready')).json).toEqual({ name: 'fmnist', ready: true });
    expect((await grpcReady(s)).server).toBe(true);
    expect((await infer(s, 4)).status).toBe(200);
  });

  it('a hung worker is terminated after worker_timeout_ms and replaced; its unanswered batch is retried once', async () => {
    const s = await serve({ workers: 1, workerTimeoutMs: 3000 });
    expect((await infer(s, 0)).status).toBe(200);
    const hang = await fault(s, 'hang-worker');
    expect(hang.json).toEqual({ model: 'fmnist', version: '1', fault: 'hang-worker', worker: 0, failed: false });
    // The hung worker takes this batch and never answers; the watchdog replaces it and the batch
    // (no row of it answered) runs again on the replacement.
    const answers = await Promise.all([infer(s, 1), infer(s, 2)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    expect(await restarts(s)).toEqual({ hang: 1 });
    expect(
      s.logs.some((l) => /worker 0 failed \(hang: batch \d+ ran longer than server.worker_timeout_ms/.test(l)),
    ).toBe(true);
    expect((await infer(s, 5)).status).toBe(200);
  });

  it('a batch is retried once only: a batch on two hung workers in turn fails with the retryable coded error', async () => {
    const s = await serve({ workers: 2, workerTimeoutMs: 3000 });
    for (const worker of [0, 1]) expect((await fault(s, 'hang-worker', worker)).json['worker']).toBe(worker);
    // The batch goes to worker 0, hangs, is retried on worker 1 (ready, but hung as well), hangs
    // again: it is failed there, not retried on worker 0's replacement, as a poison batch would be.
    const answer = await infer(s, 0);
    expect([answer.status, answer.json['code']]).toEqual([503, 'OFFRAMP_EXECUTOR_FAILED']);
    expect(String(answer.json['error'])).toMatch(/worker 1 hang: batch \d+ ran longer than server.worker_timeout_ms/);
    expect(await restarts(s)).toEqual({ hang: 2 });
    // Both replacements serve.
    await until('both workers are back', async () => (await readyWorkersGauge(s)) === 2);
    expect((await infer(s, 1)).status).toBe(200);
  });

  it('a batch slower than worker_timeout_ms inside onnxruntime stops its worker without taking the process down', async () => {
    // terminate() on a thread inside onnxruntime-node's native code aborts the whole process; the
    // pool must let such a thread end itself when the native call returns (thread-stop.ts).
    const s = await serve({
      workers: 1,
      workerTimeoutMs: 100,
      modelLines: ['tuner: { kind: off }', 'batching: { max_batch_size: 1024 }'],
    });
    const rows = 1024; // one unsplit-model run of ~a second on one thread, far past 100 ms
    const data = Array.from({ length: rows * 784 }, (_, i) => i % 256);
    const answer = await call(s, 'POST', '/v2/models/fmnist/infer', {
      inputs: [{ name: 'pixels', shape: [rows, 1, 28, 28], datatype: 'UINT8', data }],
    });
    // Timed out on the first worker, retried once on its replacement, timed out again.
    expect([answer.status, answer.json['code']]).toEqual([503, 'OFFRAMP_EXECUTOR_FAILED']);
    expect(await restarts(s)).toEqual({ hang: 2 });
    await until('the worker is back', async () => (await call(s, 'GET', '/v2/health/ready')).status === 200);
    expect((await call(s, 'GET', '/v2/health/live')).status).toBe(200);
  });

  it('a worker that keeps failing to load is given up after the bound: the model is not ready and says why', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'offramp-recovery-'));
    tmpDirs.push(dir);
    await cp(BUNDLED_DIR, dir, { recursive: true });
    const s = await serve({ workers: 1, modelDir: dir });
    expect((await infer(s, 0)).status).toBe(200);
    // The files go bad under the running server: every replacement fails to load them.
    for (const file of await readdir(join(dir, 'segments')))
      await writeFile(join(dir, 'segments', file), 'not an onnx model');
    expect((await fault(s, 'crash-worker')).json['failed']).toBe(true);
    await until(
      'the model is given up on',
      async () =>
        (await call(s, 'GET', '/v2/models/fmnist/ready')).json['reason'] !== 'every executor worker is restarting',
    );

    const model = await call(s, 'GET', '/v2/models/fmnist/ready');
    expect(model.status).toBe(400);
    const reason = String(model.json['reason']);
    expect(reason).toMatch(
      /^every executor worker failed 5 times within 60 s and is no longer restarted \(last: load: /,
    );
    expect((await call(s, 'GET', '/v2/health/ready')).status).toBe(503);
    const metadata = await call(s, 'GET', '/v2/models/fmnist');
    expect((metadata.json['parameters'] as Record<string, unknown>)['not_ready_reason']).toBe(reason);
    expect(await grpcReady(s)).toEqual({ server: false, model: false });
    // Infer is refused at once with the reason, not left to time out in the queue.
    const refused = await infer(s, 1);
    expect(refused.status).toBe(503);
    expect(refused.json['code']).toBe('OFFRAMP_MODEL_NOT_READY');
    expect(String(refused.json['error'])).toContain(reason);
    // One crash, then three failed loads restarted; the fifth failure is not restarted.
    expect(await restarts(s)).toEqual({ crash: 1, load: 3 });
    expect(await readyWorkersGauge(s)).toBe(0);
    expect(s.logs.filter((l) => l.includes('model not ready:'))).toEqual([
      `model fmnist: executor: model not ready: ${reason}`,
    ]);
  });

  it('the faults endpoint needs server.fault_injection, the admin token and a well-formed body', async () => {
    const off = await serve({ workers: 1, faultInjection: false });
    const refused = await fault(off, 'crash-worker');
    expect([refused.status, refused.json['code']]).toEqual([403, 'OFFRAMP_FAULT_INJECTION_DISABLED']);
    expect((await infer(off, 0)).status).toBe(200); // nothing was crashed
    expect(off.logs.some((l) => l.includes('fault_injection'))).toBe(false);

    const on = await serve({ workers: 1 });
    expect(on.logs.some((l) => /^WARNING: server.fault_injection is on/.test(l))).toBe(true);
    const anonymous = await fetch(`${on.base}/v2/models/fmnist/admin/faults`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ fault: 'crash-worker' }),
    });
    expect(anonymous.status).toBe(401);
    for (const body of [{ fault: 'explode' }, { fault: 'crash-worker', worker: -1 }, { fault: 'crash-worker', x: 1 }]) {
      const bad = await call(on, 'POST', '/v2/models/fmnist/admin/faults', body);
      expect([bad.status, bad.json['code']], JSON.stringify(body)).toEqual([400, 'OFFRAMP_INVALID_ADMIN_REQUEST']);
    }
    const noSuchWorker = await fault(on, 'crash-worker', 3);
    expect([noSuchWorker.status, noSuchWorker.json['error']]).toEqual([
      400,
      'invalid admin request: there is no worker 3 (workers: 0..0)',
    ]);
    expect(await restarts(on)).toEqual({});
  });
});
