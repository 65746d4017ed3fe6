/**
 * How much does offramp's serving path cost? Three measurements, same model, same batch size,
 * same onnxruntime thread setting, on this machine:
 *
 *   raw     a plain loop of onnxruntime `run` on the unsplit model, batches of B real test items
 *           (images, or emails tokenized and padded to each batch's longest as the server pads them)
 *   engine  offramp's vanilla path (no ramps) driven in-process through the data plane:
 *           scheduler → worker thread → answers, with `concurrency` single-row requests in flight
 *   http    the same over real KServe v2 HTTP, load from a separate process
 *
 * plus the serving thread's event-loop lag (p50/p99/max) while saturated. The server runs in
 * this process so its event loop is the one measured.
 *
 * Then what one request costs at batch 1 (`perRequest`), one request at a time over the same
 * sample of test items: the backbone's compute (a raw `run` per item, one worker's threads), the
 * time per request over HTTP with one in flight (client-measured: everything the serving path
 * adds, tokenizing included), their difference — the serving path's fixed per-request cost — and,
 * for a text model, the tokenizer's time per item. The sizing rule is compute ≥ 10× the
 * fixed cost; its tokenizing rule, tokenizing ≤ 5 % of the request's time over HTTP.
 *
 * Used by bench/serving-overhead.ts (on its own) and bench/run-bench.ts (as one section of the
 * comparison).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { readManifest, type PreparedManifest } from '../../src/model/manifest.js';
import { OnnxSession } from '../../src/model/onnx-session.js';
import { parseServingConfig } from '../../src/config/index.js';
import { EngineDataPlane } from '../../src/data-plane/engine-data-plane.js';
import { startServer } from '../../src/server.js';
import type { ClosedLoopResult } from '../load/load-types.js';
import { runTsChild } from './child-process.js';
import { workloadFor, type OverheadRows } from './workload.js';

export interface OverheadOptions {
  modelDir: string;
  /** Test data for the rows and requests; default: the workload's (bench/lib/workload.ts). */
  data?: string;
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

/** One request at a time, batch 1, over the same sample of test items (see the module comment). */
export interface PerRequestCost {
  /** Test items in the sample (spread evenly over the data), each sent in turn. */
  sample: number;
  /** Intra-op threads of the raw run: one server worker's. */
  threads: number;
  /** The backbone's compute per item: mean of raw onnxruntime `run`s at batch 1, ms. */
  computeMs: number;
  /** Mean time per request over HTTP with one in flight (binary bodies), ms. */
  httpMs: number;
  /** httpMs − computeMs: what the serving path adds to each request, tokenizing included, ms. */
  fixedMs: number;
  /** computeMs / fixedMs (issue 13's sizing rule: ≥ 10). */
  computeOverFixed: number;
  /** A text model's tokenizer time per item (TextTokenizer.encode), ms; null for other models. */
  tokenizeMs: number | null;
  /** tokenizeMs / httpMs (issue 13: ≤ 5 %); null for other models. */
  tokenizeShare: number | null;
}

export interface OverheadResult {
  options: OverheadOptions & { rawThreads: number };
  rawRps: number;
  engine: { rps: number; ratio: number; lag: LoopLag };
  http: { client: ClosedLoopResult; ratio: number; lag: LoopLag };
  /** Absent in results written before it was measured (issue 13). */
  perRequest?: PerRequestCost;
}

interface Setup {
  options: OverheadOptions & { rawThreads: number };
  manifest: PreparedManifest;
  items: OverheadRows;
}

/** Items in the per-request sample: a few passes fit in the run's seconds even at ~30 ms an item. */
const PER_REQUEST_SAMPLE = 64;

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

async function measureRaw(s: Setup): Promise<number> {
  const { modelDir, batch, seconds, rawThreads } = s.options;
  const rows = s.items.rows;
  const session = await OnnxSession.create(join(modelDir, s.manifest.model.file), { intraOpThreads: rawThreads });
  const inputs = Array.from({ length: 32 }, (_, b) =>
    rows.feeds(Array.from({ length: batch }, (_, i) => (b * batch + i) % rows.rows)),
  );
  for (let i = 0; i < 5; i++) await session.run(inputs[i % inputs.length]!);
  let done = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < seconds * 1000) {
    await session.run(inputs[done % inputs.length]!);
    done++;
  }
  const rps = (done * batch) / ((performance.now() - t0) / 1000);
  await session.release();
  return rps;
}

/** `n` row indices spread evenly over `rows`, so the sample has the data's mix of lengths. */
export function spreadSample(rows: number, n: number): number[] {
  const count = Math.min(rows, n);
  return Array.from({ length: count }, (_, i) => Math.floor((i * rows) / count));
}

/**
 * Mean ms per call of `work(i)` for i over `sample`, in whole passes (at least one, after one
 * uncounted pass) until `seconds` have gone by, so every item weighs the same.
 */
async function meanPerItemMs(
  sample: readonly number[],
  seconds: number,
  work: (i: number) => unknown,
): Promise<number> {
  for (const i of sample) await work(i);
  let calls = 0;
  const t0 = performance.now();
  do {
    for (const i of sample) await work(i);
    calls += sample.length;
  } while (performance.now() - t0 < seconds * 1000);
  return (performance.now() - t0) / calls;
}

/**
 * Per-request costs are measured at the default server's worker setting, one intra-op thread (and
 * one worker: one request is in flight). With more threads, serving's sessions do not spin
 * between operators (src/model/onnx-session.ts says why) while a raw loop's do, so every operator
 * of a batch-1 run would pay thread wake-ups that the raw loop does not: a cost of that setting,
 * not of the serving path, and for a BERT's few hundred operators a large one.
 */
const PER_REQUEST_THREADS = 1;

async function measurePerRequest(setup: Setup): Promise<PerRequestCost> {
  const s: Setup = { ...setup, options: { ...setup.options, workers: 1, threads: PER_REQUEST_THREADS } };
  const { modelDir, seconds, threads } = s.options;
  const sample = spreadSample(s.items.rows.rows, PER_REQUEST_SAMPLE);
  const session = await OnnxSession.create(join(modelDir, s.manifest.model.file), { intraOpThreads: threads });
  const feeds = sample.map((i) => s.items.rows.feeds([i]));
  const computeMs = await meanPerItemMs(
    feeds.map((_, k) => k),
    seconds,
    (k) => session.run(feeds[k]!),
  );
  await session.release();
  const text = s.items.text;
  const tokenizeMs = text
    ? await meanPerItemMs(sample, Math.min(seconds, 1), (i) => text.tokenizer.encode(text.texts[i] as string))
    : null;
  // One in flight: every request is a batch of 1, and the client waits for each answer.
  const { client } = await measureHttp(s, sample, 1, Math.min(seconds, 2));
  const httpMs = client.requests > 0 ? (client.seconds * 1000) / client.requests : Number.NaN;
  const fixedMs = httpMs - computeMs;
  return {
    sample: sample.length,
    threads,
    computeMs,
    httpMs,
    fixedMs,
    computeOverFixed: computeMs / fixedMs,
    tokenizeMs,
    tokenizeShare: tokenizeMs === null ? null : tokenizeMs / httpMs,
  };
}

async function measureEngine(s: Setup): Promise<{ rps: number; lag: LoopLag }> {
  const plane = await EngineDataPlane.load(parseServingConfig(vanillaConfig(s), 'bench'), { version: 'bench' });
  const requests = Array.from({ length: 256 }, (_, i) => s.items.request(i));
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

/**
 * Closed-loop HTTP load on the given rows' requests, `concurrency` in flight (binary bodies),
 * after `warmSeconds` of the same load uncounted (the per-request figures compare with a raw loop
 * that had a warm-up pass).
 */
async function measureHttp(
  s: Setup,
  rows: readonly number[],
  concurrency: number,
  warmSeconds = 0,
): Promise<{ client: ClosedLoopResult; lag: LoopLag }> {
  const server = await startServer(parseServingConfig(vanillaConfig(s), 'bench'), { version: 'bench' });
  const dir = await mkdtemp(join(tmpdir(), 'offramp-bench-'));
  try {
    const bodiesPath = join(dir, 'bodies.jsonl');
    await writeFile(bodiesPath, rows.map((i) => JSON.stringify({ inputs: [s.items.request(i)] })).join('\n') + '\n');
    const url = `http://127.0.0.1:${server.httpPort}/v2/models/bench/infer`;
    // KServe v2 binary tensor bodies, as the main bench sends by default.
    const load = (seconds: number): Promise<string> =>
      runTsChild('bench/load/closed-loop-client.ts', [url, bodiesPath, String(concurrency), String(seconds), 'binary']);
    if (warmSeconds > 0) await load(warmSeconds);
    const lag = monitorEventLoopDelay({ resolution: 1 });
    lag.enable();
    const out = await load(s.options.seconds);
    lag.disable();
    return { client: JSON.parse(out.trim()) as ClosedLoopResult, lag: lagSummary(lag) };
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Runs raw, engine, http and the per-request costs one after another; `say` gets a line after each. */
export async function measureServingOverhead(
  options: OverheadOptions,
  say: (line: string) => void = () => undefined,
): Promise<OverheadResult> {
  const manifest = await readManifest(options.modelDir);
  const s: Setup = {
    options: { ...options, rawThreads: options.rawThreads ?? options.workers * options.threads },
    manifest,
    items: await workloadFor(manifest, options.modelDir).overheadRows(4096, options.data),
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
  const http = await measureHttp(
    s,
    Array.from({ length: 256 }, (_, i) => i % s.items.rows.rows),
    o.concurrency,
  );
  say(
    `HTTP, binary bodies (load from another process): ${http.client.rps.toFixed(0)} rows/s = ` +
      `${((http.client.rps / rawRps) * 100).toFixed(1)} % of raw (${http.client.errors} errors); ` +
      `server event-loop lag p50 ${http.lag.p50Ms.toFixed(2)} ms, p99 ${http.lag.p99Ms.toFixed(2)} ms, ` +
      `max ${http.lag.maxMs.toFixed(1)} ms`,
  );
  const perRequest = await measurePerRequest(s);
  say(perRequestLine(perRequest));
  return {
    options: o,
    rawRps,
    engine: { ...engine, ratio: engine.rps / rawRps },
    http: { ...http, ratio: http.client.rps / rawRps },
    perRequest,
  };
}

/** The per-request costs in one line (the console, the reports). */
export function perRequestLine(c: PerRequestCost): string {
  const tokenizing =
    c.tokenizeMs === null || c.tokenizeShare === null
      ? ''
      : `; tokenizing ${c.tokenizeMs.toFixed(2)} ms = ${(c.tokenizeShare * 100).toFixed(1)} % of the request (target ≤ 5 %)`;
  return (
    `batch 1, one request at a time over ${c.sample} test items: backbone compute ${c.computeMs.toFixed(2)} ms ` +
    `(raw onnxruntime, ${c.threads} thread(s)); ${c.httpMs.toFixed(2)} ms per request over HTTP; ` +
    `serving path's fixed cost ${c.fixedMs.toFixed(2)} ms: compute = ${c.computeOverFixed.toFixed(1)}× it ` +
    `(target ≥ 10×)${tokenizing}`
  );
}
