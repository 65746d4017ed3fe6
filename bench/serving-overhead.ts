/**
 * How much does offramp's serving path cost? Three measurements in one run, same model, same
 * batch size, same onnxruntime thread setting, on this machine:
 *
 *   raw     a plain loop of onnxruntime `run` on the unsplit model, batches of B real images
 *   engine  offramp's vanilla path (no ramps) driven in-process through the data plane:
 *           scheduler → worker thread → answers, with `concurrency` single-row requests in flight
 *   http    the same over real KServe v2 HTTP, load from a separate process
 *
 * It prints throughput as ratios against `raw` measured in the same run, and the server's
 * event-loop lag (p50/p99/max) while saturated. Nothing here is asserted; it reports.
 *
 *   npx tsx bench/serving-overhead.ts [--model models/fmnist-resnet] [--seconds 8] [--batch 16] [--concurrency 64]
 *                                     [--workers 1] [--threads 2] [--raw-threads workers×threads] [--json]
 */
import { spawn } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { readManifest } from '../ramps/manifest.js';
import { readNpy } from '../ramps/npy.js';
import { OnnxSession } from '../ramps/onnx-session.js';
import { InputRows } from '../ramps/prepare.js';
import { parseServingConfig } from '../src/config/index.js';
import { EngineDataPlane } from '../src/data-plane/engine-data-plane.js';
import { startServer } from '../src/server.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/fmnist-resnet' },
    data: { type: 'string', default: 'models/data/fashion-mnist/test-images.npy.gz' },
    seconds: { type: 'string', default: '8' },
    batch: { type: 'string', default: '16' },
    concurrency: { type: 'string', default: '64' },
    threads: { type: 'string', default: '2' },
    workers: { type: 'string', default: '1' },
    'raw-threads': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const modelDir = resolve(args.model);
const seconds = Number(args.seconds);
const batch = Number(args.batch);
const concurrency = Number(args.concurrency);
const threads = Number(args.threads);
const workers = Number(args.workers);
/** The raw loop's threads: by default the same as the server's in total (workers × threads). */
const rawThreads = Number(args['raw-threads'] ?? workers * threads);

const manifest = await readManifest(modelDir);
const spec = manifest.model.inputs[0];
if (!spec) throw new Error('model has no input');
const rows = new InputRows(await readNpy(args.data), spec, 4096);
const say = (line: string): void => {
  if (!args.json) process.stderr.write(`${line}\n`);
};

// --- raw onnxruntime loop ---
async function measureRaw(): Promise<number> {
  const session = await OnnxSession.create(join(modelDir, manifest.model.file), { intraOpThreads: rawThreads });
  const inputs = Array.from({ length: 32 }, (_, b) => rows.gather(Array.from({ length: batch }, (_, i) => (b * batch + i) % rows.rows)));
  for (let i = 0; i < 5; i++) await session.run({ [spec!.name]: inputs[i % inputs.length]! });
  let done = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await session.run({ [spec!.name]: inputs[done % inputs.length]! });
    done++;
  }
  const rps = (done * batch) / ((performance.now() - t0) / 1000);
  await session.release();
  return rps;
}

function vanillaConfig(): string {
  return [
    'server: { http_port: 0, grpc_port: 0, host: 127.0.0.1, workers: ' + workers + ', intra_op_threads: ' + threads + ' }',
    'models:',
    `  - name: bench`,
    `    path: ${JSON.stringify(modelDir)}`,
    '    slo: { latency_ms: 60000 }',
    '    tuner: { kind: "off" }',
    `    batching: { max_batch_size: ${batch}, max_queue_delay_ms: 5, max_queue_size: 100000 }`,
  ].join('\n');
}

function rowRequest(i: number) {
  const t = rows.gather([i % rows.rows]);
  return { name: spec!.name, datatype: spec!.type === 'int64' ? 'INT64' : 'FP32', shape: t.dims, data: Array.from(t.data as Float32Array, Number) };
}

function lagSummary(h: ReturnType<typeof monitorEventLoopDelay>) {
  return { p50Ms: h.percentile(50) / 1e6, p99Ms: h.percentile(99) / 1e6, maxMs: h.max / 1e6 };
}

// --- engine in-process (no transport) ---
async function measureEngine() {
  const config = parseServingConfig(vanillaConfig(), 'bench');
  const plane = await EngineDataPlane.load(config, { version: 'bench' });
  const requests = Array.from({ length: 256 }, (_, i) => rowRequest(i));
  const lag = monitorEventLoopDelay({ resolution: 1 });
  let answered = 0;
  const deadline = performance.now() + seconds * 1000;
  lag.enable();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, c) => {
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

// --- over HTTP, load from another process ---
async function measureHttp() {
  const config = parseServingConfig(vanillaConfig(), 'bench');
  const server = await startServer(config, { version: 'bench' });
  const dir = await mkdtemp(join(tmpdir(), 'offramp-bench-'));
  const bodiesPath = join(dir, 'bodies.json');
  await writeFile(bodiesPath, JSON.stringify(Array.from({ length: 256 }, (_, i) => ({ inputs: [rowRequest(i)] }))));
  const lag = monitorEventLoopDelay({ resolution: 1 });
  lag.enable();
  const url = `http://127.0.0.1:${server.httpPort}/v2/models/bench/infer`;
  const child = spawn(process.execPath, ['--import', 'tsx', 'bench/http-load.ts', url, bodiesPath, String(concurrency), String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await new Promise((r) => child.on('exit', r));
  lag.disable();
  await server.close();
  const client = JSON.parse(out.trim()) as { rps: number; errors: number; p50: number; p99: number };
  return { client, lag: lagSummary(lag) };
}

say(`model ${manifest.name}, batch ${batch}, server ${workers} worker(s) × ${threads} intra-op thread(s), raw loop ${rawThreads} thread(s), ${seconds} s per measurement, ${concurrency} requests in flight`);
const raw = await measureRaw();
say(`raw onnxruntime loop: ${raw.toFixed(0)} rows/s`);
const engine = await measureEngine();
say(`engine (in-process):  ${engine.rps.toFixed(0)} rows/s = ${(engine.rps / raw * 100).toFixed(1)} % of raw; event-loop lag p50 ${engine.lag.p50Ms.toFixed(2)} ms, p99 ${engine.lag.p99Ms.toFixed(2)} ms, max ${engine.lag.maxMs.toFixed(1)} ms`);
const http = await measureHttp();
say(`HTTP (load from another process): ${http.client.rps.toFixed(0)} rows/s = ${(http.client.rps / raw * 100).toFixed(1)} % of raw (${http.client.errors} errors); server event-loop lag p50 ${http.lag.p50Ms.toFixed(2)} ms, p99 ${http.lag.p99Ms.toFixed(2)} ms, max ${http.lag.maxMs.toFixed(1)} ms`);
if (args.json) {
  process.stdout.write(JSON.stringify({ model: manifest.name, batch, workers, threads, rawThreads, seconds, concurrency, rawRps: raw, engine: { ...engine, ratio: engine.rps / raw }, http: { ...http, ratio: http.client.rps / raw } }, null, 2) + '\n');
}
