/**
 * How much does offramp's serving path cost? Three measurements, same model, same batch size,
 * same onnxruntime thread setting, on this machine:
 *
 *   raw     a plain loop of onnxruntime `run` on the unsplit model, batches of B real images
 *   engine  offramp's vanilla path (no ramps) driven in-process through the data plane:
 *           scheduler → worker thread → answers, with `concurrency` single-row requests in flight
 *   http    the same over real KServe v2 HTTP, load from a separate process
 *
 * plus the serving thread's event-loop lag (p50/p99/max) while saturated. The server runs in
 * this process so its event loop is the one measured. Used by bench/serving-overhead.ts (on its
 * own) and bench/run-bench.ts (as one section of the comparison).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { readManifest, type PreparedManifest } from '../../src/model/manifest.js';
import { readNpy } from '../../src/model/npy.js';
import { OnnxSession } from '../../src/model/onnx-session.js';
import { InputRows } from '../../src/model/input-rows.js';
import { parseServingConfig } from '../../src/config/index.js';
import { EngineDataPlane } from '../../src/data-plane/engine-data-plane.js';
import { startServer } from '../../src/server.js';
import type { ClosedLoopResult } from '../load/load-types.js';
import { runTsChild } from './child-process.js';

export interface OverheadOptions {
  modelDir: string;
  data: string;
  seconds: number;
  batch: number;
  concurrency: number;
  workers: number;
  threads: number;
  /** The raw loop's threads: by default the server's in total (workers × threads). */
  rawThreads?: number;
}

export interface LoopLag {
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface OverheadResult {
  options: OverheadOptions & { rawThreads: number };
  rawRps: number;
  engine: { rps: number; ratio: number; lag: LoopLag };
  http: { client: ClosedLoopResult; ratio: number; lag: LoopLag };
}

interface Setup {
  options: OverheadOptions & { rawThreads: number };
  manifest: PreparedManifest;
  spec: NonNullable<PreparedManifest['model']['inputs'][0]>;
  rows: InputRows;
}

function lagSummary(h: ReturnType<typeof monitorEventLoopDelay>): LoopLag {
  return { p50Ms: h.percentile(50) / 1e6, p99Ms: h.percentile(99) / 1e6, maxMs: h.max / 1e6 };
}

function vanillaConfig(s: Setup): string {
  const { modelDir, workers, threads, batch } = s.options;
  return [
    `server: { http_port: 0, grpc_port: 0, host: 127.0.0.1, workers: ${workers}, intra_op_threads: ${threads} }`,
    'models:',
    '  - name: bench',
    `    path: ${JSON.stringify(modelDir)}`,
    '    slo: { latency_ms: 60000 }',
    '    tuner: { kind: "off" }',
    `    batching: { max_batch_size: ${batch}, max_queue_delay_ms: 5, max_queue_size: 100000 }`,
  ].join('\n');
}

function rowRequest(s: Setup, i: number) {
  const t = s.rows.gather([i % s.rows.rows]);
  return {
    name: s.spec.name,
    datatype: s.spec.type === 'int64' ? 'INT64' : 'FP32',
    shape: t.dims,
    data: Array.from(t.data as Float32Array, Number),
  };
}

async function measureRaw(s: Setup): Promise<number> {
  const { modelDir, batch, seconds, rawThreads } = s.options;
  const session = await OnnxSession.create(join(modelDir, s.manifest.model.file), { intraOpThreads: rawThreads });
  const inputs = Array.from({ length: 32 }, (_, b) =>
    s.rows.gather(Array.from({ length: batch }, (_, i) => (b * batch + i) % s.rows.rows)),
  );
  for (let i = 0; i < 5; i++) await session.run({ [s.spec.name]: inputs[i % inputs.length]! });
  let done = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await session.run({ [s.spec.name]: inputs[done % inputs.length]! });
    done++;
  }
  const rps = (done * batch) / ((performance.now() - t0) / 1000);
  await session.release();
  return rps;
}

async function measureEngine(s: Setup): Promise<{ rps: number; lag: LoopLag }> {
  const plane = await EngineDataPlane.load(parseServingConfig(vanillaConfig(s), 'bench'), { version: 'bench' });
  const requests = Array.from({ length: 256 }, (_, i) => rowRequest(s, i));
  const lag = monitorEventLoopDelay({ resolution: 1 });
  let answered = 0;
  const deadline = performance.now() + s.options.seconds * 1000;
  lag.enable();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: s.options.concurrency }, async (_, c) => {
      let i = c;
      while (performance.now() < deadline) {
        await plane.infer({ modelName: 'bench', parameters: {}, inputs: [requests[i++ % requests.length]!] });
        answered++;
      }
    }),
  );
  const rps = answered / ((performance.now() - t0) / 1000);
  lag.disable();
  await plane.close();
  return { rps, lag: lagSummary(lag) };
}

async function measureHttp(s: Setup): Promise<{ client: ClosedLoopResult; lag: LoopLag }> {
  const server = await startServer(parseServingConfig(vanillaConfig(s), 'bench'), { version: 'bench' });
  const dir = await mkdtemp(join(tmpdir(), 'offramp-bench-'));
  try {
    const bodiesPath = join(dir, 'bodies.jsonl');
    await writeFile(
      bodiesPath,
      Array.from({ length: 256 }, (_, i) => JSON.stringify({ inputs: [rowRequest(s, i)] })).join('\n') + '\n',
    );
    const lag = monitorEventLoopDelay({ resolution: 1 });
    lag.enable();
    const url = `http://127.0.0.1:${server.httpPort}/v2/models/bench/infer`;
    const out = await runTsChild('bench/load/closed-loop-client.ts', [
      url,
      bodiesPath,
      String(s.options.concurrency),
      String(s.options.seconds),
      // KServe v2 binary tensor bodies, as the main bench sends by default.
      'binary',
    ]);
    lag.disable();
    return { client: JSON.parse(out.trim()) as ClosedLoopResult, lag: lagSummary(lag) };
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs raw, engine and http one after another; `say` gets a line after each. */
export async function measureServingOverhead(
  options: OverheadOptions,
  say: (line: string) => void = () => undefined,
): Promise<OverheadResult> {
  const manifest = await readManifest(options.modelDir);
  const spec = manifest.model.inputs[0];
  if (!spec) throw new Error('model has no input');
  const s: Setup = {
    options: { ...options, rawThreads: options.rawThreads ?? options.workers * options.threads },
    manifest,
    spec,
    rows: new InputRows(await readNpy(options.data), spec, 4096),
  };
  const o = s.options;
  say(
    `model ${manifest.name}, batch ${o.batch}, server ${o.workers} worker(s) × ${o.threads} intra-op thread(s), ` +
      `raw loop ${o.rawThreads} thread(s), ${o.seconds} s per measurement, ${o.concurrency} requests in flight`,
  );
  const rawRps = await measureRaw(s);
  say(`raw onnxruntime loop: ${rawRps.toFixed(0)} rows/s`);
  const engine = await measureEngine(s);
  say(
    `engine (in-process):  ${engine.rps.toFixed(0)} rows/s = ${((engine.rps / rawRps) * 100).toFixed(1)} % of raw; ` +
      `event-loop lag p50 ${engine.lag.p50Ms.toFixed(2)} ms, p99 ${engine.lag.p99Ms.toFixed(2)} ms, ` +
      `max ${engine.lag.maxMs.toFixed(1)} ms`,
  );
  const http = await measureHttp(s);
  say(
    `HTTP, binary bodies (load from another process): ${http.client.rps.toFixed(0)} rows/s = ` +
      `${((http.client.rps / rawRps) * 100).toFixed(1)} % of raw (${http.client.errors} errors); ` +
      `server event-loop lag p50 ${http.lag.p50Ms.toFixed(2)} ms, p99 ${http.lag.p99Ms.toFixed(2)} ms, ` +
      `max ${http.lag.maxMs.toFixed(1)} ms`,
  );
  return {
    options: o,
    rawRps,
    engine: { ...engine, ratio: engine.rps / rawRps },
    http: { ...http, ratio: http.client.rps / rawRps },
  };
}
