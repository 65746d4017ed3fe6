/**
 * What every chaos case shares: the SLO file it serves the bundled model with, the requests it
 * sends (real Fashion-MNIST test images), the full model's answers to compare with, the server's
 * memory as the kernel reports it, and the result row each case fills in.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readNpy } from '../../src/model/npy.js';
import { startServerProcess, type ServerProcess } from '../lib/server-process.js';
import { closedLoop, send, type ClosedLoop, type Sent, type Target } from './traffic.js';

export const MODEL_DIR = resolve('models/fmnist-resnet');
export const MODEL_NAME = 'fmnist';
export const INFER_PATH = `/v2/models/${MODEL_NAME}/infer`;
export const ADMIN_TOKEN = 'chaos-suite-admin-token-0123456789';
const TEST_IMAGES = 'models/data/fashion-mnist/test-images.npy.gz';

export interface CaseResult {
  name: string;
  /** Requests (or start attempts) the case made. */
  tried: number;
  /** Answers by label: "200", "429 OFFRAMP_QUEUE_FULL", "refused", … */
  outcomes: Map<string, number>;
  /** Requests fully sent while the server was accepting, never answered: must be 0. */
  lost: number;
  /** The server process ended without being asked to: must be 0. */
  crashes: number;
  /** Highest resident memory of the server process seen during the case, MiB. */
  worstRssMb: number | null;
  /** From the fault (or the end of the load) to the next request answered 200, ms. */
  recoverMs: number | null;
  /** What the case expected and did not see; empty when it passed. */
  failures: string[];
  notes: string[];
}

export interface CaseContext {
  quick: boolean;
  workDir: string;
  seed: number;
  images: ImageSet;
}

export interface ChaosCase {
  name: string;
  /** One line: what is done to the server and what must hold. */
  about: string;
  run(ctx: CaseContext): Promise<CaseResult>;
}

export function emptyResult(name: string): CaseResult {
  return {
    name,
    tried: 0,
    outcomes: new Map(),
    lost: 0,
    crashes: 0,
    worstRssMb: null,
    recoverMs: null,
    failures: [],
    notes: [],
  };
}

/** The test images as request bodies (one image per request, UINT8 pixels) and the full model's classes. */
export interface ImageSet {
  bodies: Buffer[];
  /** The unsplit model's class for each body, from a server with exits off; filled by `referenceClasses`. */
  classes: number[];
}

export async function loadImages(count: number): Promise<ImageSet> {
  const images = await readNpy(TEST_IMAGES);
  const rowShape = images.shape.slice(1);
  const rowSize = rowShape.reduce((a, b) => a * b, 1);
  const bodies: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const data = Array.from(images.data.subarray(i * rowSize, (i + 1) * rowSize) as Uint8Array);
    const input = { name: 'pixels', shape: [1, ...rowShape], datatype: 'UINT8', data };
    bodies.push(Buffer.from(JSON.stringify({ inputs: [input] })));
  }
  return { bodies, classes: [] };
}

/** The class of an answered infer body, or null when the body is not a 200 answer. */
export function classOf(s: Sent): number | null {
  if (s.outcome.kind !== 'answer' || s.outcome.status !== 200) return null;
  const body = JSON.parse(s.outcome.body) as { outputs?: { name: string; data: number[] }[] };
  const out = body.outputs?.find((o) => o.name === 'class');
  return out?.data[0] ?? null;
}

/** The exit ramp of an answered infer body (-1: the final layer), or null. */
export function exitRampOf(s: Sent): number | null {
  if (s.outcome.kind !== 'answer' || s.outcome.status !== 200) return null;
  const body = JSON.parse(s.outcome.body) as { outputs?: { name: string; data: number[] }[] };
  return body.outputs?.find((o) => o.name === 'exit_ramp')?.data[0] ?? null;
}

export interface ServeOptions {
  /** Extra `server:` fields. */
  server?: Record<string, unknown>;
  /** Extra fields of the model entry (tuner, exits, batching, slo). */
  model?: Record<string, unknown>;
  modelDir?: string;
}

/** Writes an SLO file (JSON is YAML) serving the bundled model as `fmnist` on loopback. */
export async function writeConfig(path: string, options: ServeOptions = {}): Promise<string> {
  const config = {
    server: { host: '127.0.0.1', workers: 2, intra_op_threads: 1, admin_token: ADMIN_TOKEN, ...options.server },
    models: [
      {
        name: MODEL_NAME,
        path: options.modelDir ?? MODEL_DIR,
        slo: { latency_ms: 50 },
        tuner: { kind: 'off' },
        ...options.model,
      },
    ],
  };
  await writeFile(path, JSON.stringify(config, null, 2));
  return path;
}

export async function serve(ctx: CaseContext, label: string, options: ServeOptions = {}): Promise<ServerProcess> {
  const config = await writeConfig(join(ctx.workDir, `${label}.json`), options);
  return startServerProcess(config, join(ctx.workDir, `${label}.log`));
}

/**
 * Serves for one case: starts the server, watches its memory, runs `body`, and whatever happens
 * records the worst memory and whether the server died unasked (a crash), then stops it.
 */
export async function withServer(
  ctx: CaseContext,
  result: CaseResult,
  label: string,
  options: ServeOptions,
  body: (server: ServerProcess) => Promise<void>,
): Promise<void> {
  const server = await serve(ctx, label, options);
  const memory = watchMemory(server.pid);
  try {
    await body(server);
  } finally {
    result.worstRssMb = memory.stop();
    if (server.exitCodeNow() !== null) result.crashes++;
    await server.stop();
  }
}

/** `clients` closed-loop clients sending the test images in turn (request i sends image i mod n). */
export function imageLoad(ctx: CaseContext, target: Target, clients: number): ClosedLoop {
  const n = ctx.images.bodies.length;
  return closedLoop(target, clients, INFER_PATH, (i) => ({ body: ctx.images.bodies[i % n] as Buffer }));
}

/** Fills `images.classes` from a server with exits off: the answers every case compares with. */
export async function referenceClasses(ctx: CaseContext): Promise<void> {
  const server = await serve(ctx, 'reference');
  try {
    for (const body of ctx.images.bodies) {
      const s = await send({ port: server.httpPort, fresh: false }, false, INFER_PATH, body);
      const c = classOf(s);
      if (c === null) throw new Error(`reference run: ${JSON.stringify(s.outcome)}`);
      ctx.images.classes.push(c);
    }
  } finally {
    await server.stop();
  }
}

/** Samples the server's resident memory (VmRSS) until stopped; `worstMb` is the highest seen. */
export function watchMemory(pid: number, everyMs = 100): { readonly worstMb: number; stop(): number } {
  let worst = 0;
  const sample = (): void => {
    readFile(`/proc/${pid}/status`, 'utf8').then(
      (text) => {
        const kb = Number(/VmRSS:\s+(\d+)/.exec(text)?.[1] ?? 0);
        worst = Math.max(worst, kb / 1024);
      },
      () => undefined, // the process is gone
    );
  };
  sample();
  const timer = setInterval(sample, everyMs);
  return {
    get worstMb() {
      return worst;
    },
    stop() {
      clearInterval(timer);
      return Math.round(worst);
    },
  };
}

/**
 * Sends one good request every `everyMs` from `fromMs` on until one is answered 200; resolves
 * with the time from `fromMs` to that answer, or null if none came within `limitMs`.
 */
export async function timeToRecover(
  port: number,
  body: Buffer,
  fromMs: number,
  limitMs = 60_000,
): Promise<number | null> {
  while (performance.now() - fromMs < limitMs) {
    const s = await send({ port, fresh: false, timeoutMs: 5_000 }, false, INFER_PATH, body);
    if (s.outcome.kind === 'answer' && s.outcome.status === 200) return Math.round(s.endedMs - fromMs);
    await new Promise((r) => setTimeout(r, 20));
  }
  return null;
}

export async function adminPost(port: number, path: string, body: unknown): Promise<Sent> {
  return send({ port, fresh: false }, false, path, Buffer.from(JSON.stringify(body)), {
    'content-type': 'application/json',
    authorization: `Bearer ${ADMIN_TOKEN}`,
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The server's own view of answered requests' latency (`offramp_request_latency_seconds`, from
 * arrival at the engine to the answer, every exit summed): the share within `sloMs` and the
 * smallest bucket bound holding 95 % of them. Beside the client's view it separates time in the
 * server's engine from time in sockets and in the clients' own event loop.
 */
export async function serverLatency(
  baseUrl: string,
  sloMs: number,
): Promise<{ withinSlo: number; p95AtMostMs: number }> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  const byBound = new Map<number, number>();
  for (const line of text.split('\n')) {
    const m = /^offramp_request_latency_seconds_bucket\{[^}]*le="([^"]+)"[^}]*\} (\S+)/.exec(line);
    if (!m) continue;
    const bound = m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]);
    byBound.set(bound, (byBound.get(bound) ?? 0) + Number(m[2]));
  }
  const bounds = [...byBound.keys()].sort((a, b) => a - b);
  const total = byBound.get(Number.POSITIVE_INFINITY) ?? 0;
  if (total === 0) return { withinSlo: Number.NaN, p95AtMostMs: Number.NaN };
  const within = bounds.filter((b) => b <= sloMs / 1000).map((b) => byBound.get(b) ?? 0);
  const p95 = bounds.find((b) => (byBound.get(b) ?? 0) >= 0.95 * total) ?? Number.POSITIVE_INFINITY;
  return { withinSlo: (within.at(-1) ?? 0) / total, p95AtMostMs: p95 * 1000 };
}
