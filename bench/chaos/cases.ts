/**
 * The chaos cases: each starts a real `offramp serve` process, does one bad thing to it over real
 * sockets or signals, and reports what its clients saw. The expectations every case checks:
 * nothing lost (a request fully sent to a server that was accepting is answered), no crash (the
 * server process ends only when asked), every error answer coded. Durations shrink with --quick.
 */
import { spawn } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { seededRandom } from '../../src/model/numeric.js';
import { percentile } from '../lib/stats.js';
import {
  INFER_PATH,
  MODEL_DIR,
  MODEL_NAME,
  adminPost,
  classOf,
  emptyResult,
  exitRampOf,
  imageLoad,
  serve,
  serverLatency,
  sleep,
  timeToRecover,
  watchMemory,
  withServer,
  writeConfig,
  type CaseContext,
  type CaseResult,
  type ChaosCase,
} from './chaos-kit.js';
import { countOutcomes, send, type Sent } from './traffic.js';

/** Every answer that is not a 200 must carry an offramp code; lost requests are counted. */
function judgeAnswers(result: CaseResult, sent: readonly Sent[], allowed: readonly string[]): void {
  result.tried += sent.length;
  for (const [label, n] of countOutcomes(sent)) result.outcomes.set(label, (result.outcomes.get(label) ?? 0) + n);
  result.lost += sent.filter((s) => s.outcome.kind === 'lost').length;
  const unexpected = [...countOutcomes(sent)].filter(([label]) => label !== 'lost' && !allowed.includes(label));
  for (const [label, n] of unexpected) result.failures.push(`${n} × ${label}`);
  if (result.lost > 0) {
    result.failures.push(`${result.lost} requests lost`);
    const reasons = new Map<string, number>();
    for (const s of sent)
      if (s.outcome.kind === 'lost') reasons.set(s.outcome.reason, (reasons.get(s.outcome.reason) ?? 0) + 1);
    result.notes.push(`lost: ${[...reasons].map(([r, n]) => `${n} × ${r}`).join(', ')}`);
  }
}

/** Good answers must equal the full model's (exits are off in these cases); closed loops send body index % n. */
function judgeClasses(result: CaseResult, ctx: CaseContext, sent: readonly Sent[]): void {
  const n = ctx.images.bodies.length;
  const wrong = sent.filter((s) => {
    const c = classOf(s);
    return c !== null && s.index !== undefined && c !== ctx.images.classes[s.index % n];
  }).length;
  if (wrong > 0) result.failures.push(`${wrong} answers differ from the full model`);
}

function firstOkAfter(sent: readonly Sent[], fromMs: number): number | null {
  const ok = sent.filter((s) => s.startedMs >= fromMs && classOf(s) !== null).map((s) => s.endedMs - fromMs);
  return ok.length > 0 ? Math.round(Math.min(...ok)) : null;
}

/** Runs `node bin/offramp.js serve --config FILE` to its exit (bounded), for the startup cases. */
function serveToExit(
  configPath: string,
  limitMs: number,
): Promise<{ code: number | null; stderr: string; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['bin/offramp.js', 'serve', '--config', configPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), limitMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, ms: Math.round(performance.now() - t0) });
    });
  });
}

const startupFailures: ChaosCase = {
  name: 'startup failures',
  about: 'port in use, missing model, corrupt manifest, invalid config: exit non-zero within seconds, one line',
  async run(ctx) {
    const result = emptyResult(this.name);
    const { createServer } = await import('node:net');
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const busy = (blocker.address() as { port: number }).port;
    const brokenDir = join(ctx.workDir, 'broken-manifest');
    await cp(MODEL_DIR, brokenDir, { recursive: true });
    await writeFile(join(brokenDir, 'manifest.json'), '{"format": ');
    const attempts: [string, string][] = [
      ['port in use', await writeConfig(join(ctx.workDir, 'busy.json'), { server: { http_port: busy } })],
      ['missing model', await writeConfig(join(ctx.workDir, 'missing.json'), { modelDir: join(ctx.workDir, 'nope') })],
      ['corrupt manifest', await writeConfig(join(ctx.workDir, 'manifest.json'), { modelDir: brokenDir })],
      ['invalid config', join(ctx.workDir, 'invalid.yaml')],
    ];
    await writeFile(join(ctx.workDir, 'invalid.yaml'), 'server: { workers: many }\n');
    try {
      for (const [what, path] of attempts) {
        const { code, stderr, ms } = await serveToExit(path, 20_000);
        result.tried++;
        const label = code === 0 || code === null ? `exit ${String(code)}` : 'exit non-zero';
        result.outcomes.set(label, (result.outcomes.get(label) ?? 0) + 1);
        // Startup progress may be logged before the failure; the failure itself is the last line, alone.
        const lines = stderr
          .trim()
          .split('\n')
          .filter((l) => l.trim() !== '');
        const last = (lines.at(-1) ?? '').replace(/^\S+ offramp: /, '').replace(/^offramp: /, '');
        if (code === 0 || code === null) result.failures.push(`${what}: exit ${String(code)}`);
        if (lines.some((l) => /^\s+at /.test(l))) result.failures.push(`${what}: a stack trace on stderr`);
        result.notes.push(`${what}: exit ${String(code)} after ${ms} ms: "${last}"`);
      }
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    return result;
  },
};

/** Steady keep-alive traffic, a fault injected after `warmMs`, more traffic, then the judgement. */
function workerFault(name: string, fault: 'crash-worker' | 'hang-worker', workers: number): ChaosCase {
  return {
    name,
    about: `${fault} on a server with ${workers} worker(s) under load: nothing lost, every error coded, serving again`,
    async run(ctx) {
      const result = emptyResult(this.name);
      const options = {
        server: { workers, fault_injection: true, ...(fault === 'hang-worker' ? { worker_timeout_ms: 1000 } : {}) },
      };
      await withServer(ctx, result, name.replaceAll(' ', '-'), options, async (server) => {
        const load = imageLoad(ctx, { port: server.httpPort, fresh: false }, 16);
        await sleep(ctx.quick ? 500 : 1500);
        const faultAt = performance.now();
        const injected = await adminPost(server.httpPort, `/v2/models/${MODEL_NAME}/admin/faults`, { fault });
        if (injected.outcome.kind !== 'answer' || injected.outcome.status !== 200)
          result.failures.push(`fault injection refused: ${JSON.stringify(injected.outcome).slice(0, 200)}`);
        await sleep(ctx.quick ? 2000 : 4000);
        await load.stop();
        judgeAnswers(result, load.sent, ['200', '503 OFFRAMP_EXECUTOR_FAILED', '504 OFFRAMP_TIMED_OUT_IN_QUEUE']);
        judgeClasses(result, ctx, load.sent);
        result.recoverMs = firstOkAfter(load.sent, faultAt);
        if (result.recoverMs === null) result.failures.push('no request answered 200 after the fault');
      });
      return result;
    },
  };
}

const corruptHead: ChaosCase = {
  name: 'corrupt ramp head',
  about: 'one head file of the model is garbage: the model serves without that ramp, answers right',
  async run(ctx) {
    const result = emptyResult(this.name);
    const dir = join(ctx.workDir, 'corrupt-head-model');
    await cp(MODEL_DIR, dir, { recursive: true });
    const broken = 1;
    await writeFile(join(dir, 'heads', `head-${broken}.onnx`), Buffer.from('not an onnx model at all'));
    const options = {
      modelDir: dir,
      model: { tuner: { kind: 'static' }, exits: { thresholds: { [String(broken)]: 0.5 } } },
    };
    await withServer(ctx, result, 'corrupt-head', options, async (server) => {
      const load = imageLoad(ctx, { port: server.httpPort, fresh: false }, 8);
      await sleep(ctx.quick ? 1500 : 4000);
      await load.stop();
      judgeAnswers(result, load.sent, ['200']);
      const fromBroken = load.sent.filter((s) => exitRampOf(s) === broken).length;
      if (fromBroken > 0) result.failures.push(`${fromBroken} answers from the broken ramp`);
      const log = await readFile(server.logPath, 'utf8');
      const line = log.split('\n').find((l) => l.includes(`ramp ${broken}`) && /disabled/i.test(l));
      if (!line) result.failures.push(`no log line says ramp ${broken} is disabled`);
      else result.notes.push(line.replace(/^\S+ offramp: /, ''));
    });
    return result;
  },
};

const sigtermUnderLoad: ChaosCase = {
  name: 'SIGTERM under load',
  about: '64 clients on fresh connections, SIGTERM: every request sent before it answered, exit 0',
  async run(ctx) {
    const result = emptyResult(this.name);
    const server = await serve(ctx, 'sigterm');
    const memory = watchMemory(server.pid);
    const load = imageLoad(ctx, { port: server.httpPort, fresh: true, timeoutMs: 60_000 }, 64);
    await sleep(ctx.quick ? 1000 : 2000);
    const signalAt = performance.now();
    server.signal('SIGTERM');
    const code = await server.exited;
    await load.stop();
    result.worstRssMb = memory.stop();
    const before = load.sent.filter((s) => s.sentMs !== null && s.sentMs < signalAt);
    const after = load.sent.filter((s) => !(s.sentMs !== null && s.sentMs < signalAt));
    // Under this load some requests wait past their deadline: a coded 504 or 429 is an answer.
    judgeAnswers(result, before, [
      '200',
      '503 OFFRAMP_SHUTTING_DOWN',
      '504 OFFRAMP_TIMED_OUT_IN_QUEUE',
      '429 OFFRAMP_OVERLOADED',
      '429 OFFRAMP_QUEUE_FULL',
    ]);
    judgeClasses(result, ctx, before);
    const afterCounts = countOutcomes(after);
    result.notes.push(
      `${before.length} sent before the signal; after it: ` +
        [...afterCounts].map(([label, k]) => `${k} × ${label}`).join(', '),
    );
    result.tried += after.length;
    if (code !== 0) result.failures.push(`exit code ${String(code)} after the drain`);
    await server.stop();
    return result;
  },
};

/** Seeded byte-level damage to a valid body: flips, cuts, insertions, repeats. */
function mutate(body: Buffer, random: () => number): Buffer {
  const bytes = [...body];
  const edits = 1 + Math.floor(random() * 4);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(random() * bytes.length);
    const kind = Math.floor(random() * 4);
    if (kind === 0) bytes[at] = Math.floor(random() * 256);
    else if (kind === 1) bytes.length = at;
    else if (kind === 2) {
      const token = ['[', '{', '"', '-1e999', 'NaN', '\u0000'][Math.floor(random() * 6)] ?? '';
      bytes.splice(at, 0, ...Buffer.from(token));
    } else bytes.splice(at, Math.floor(random() * 64));
  }
  return Buffer.from(bytes);
}

/** Hand-made bodies the byte mutations are unlikely to hit. */
function craftedBodies(valid: Buffer): Buffer[] {
  const json = (x: unknown): Buffer => Buffer.from(JSON.stringify(x));
  const input = (extra: object): Buffer => json({ inputs: [{ name: 'pixels', datatype: 'FP32', ...extra }] });
  return [
    Buffer.from('['.repeat(100_000)),
    Buffer.from('{"inputs":' + '['.repeat(50_000)),
    input({ shape: [1e12, 1, 28, 28], data: [1] }),
    input({ shape: [-1, 1, 28, 28], data: [1] }),
    input({ shape: [2 ** 53, 784], data: [] }),
    input({ shape: [1, 1, 28, 28], data: Array(784).fill('NaN') }),
    Buffer.from(valid.toString('utf8').replace(/\d+/, '1e999')),
    json({ inputs: 'pixels' }),
    json({ inputs: [{ name: 'pixels', shape: 'big', datatype: 'UINT8', data: [] }] }),
    json(null),
    Buffer.alloc(0),
    Buffer.from('\u00ff\u00fe'),
  ];
}

const fuzzedHttp: ChaosCase = {
  name: 'fuzzed HTTP bodies',
  about: 'seeded damaged JSON bodies beside good requests: coded 4xx only, good answers all right',
  async run(ctx) {
    const result = emptyResult(this.name);
    const random = seededRandom(ctx.seed);
    await withServer(ctx, result, 'fuzz-http', {}, async (server) => {
      const good = imageLoad(ctx, { port: server.httpPort, fresh: false }, 4);
      const bad = craftedBodies(ctx.images.bodies[0] as Buffer);
      const count = ctx.quick ? 400 : 2000;
      for (let i = 0; i < count; i++)
        bad.push(mutate(ctx.images.bodies[i % ctx.images.bodies.length] as Buffer, random));
      const badSent: Sent[] = [];
      const port = server.httpPort;
      const senders = Array.from({ length: 8 }, async (_, w) => {
        for (let i = w; i < bad.length; i += 8)
          badSent.push(await send({ port, fresh: false, timeoutMs: 30_000 }, false, INFER_PATH, bad[i] as Buffer));
      });
      await Promise.all(senders);
      await good.stop();
      // A mutation may leave a valid request (200); anything else must be a coded client error.
      const allowedBad = [...countOutcomes(badSent).keys()].filter((l) => l === '200' || /^4\d\d OFFRAMP_/.test(l));
      judgeAnswers(result, badSent, allowedBad);
      judgeAnswers(result, good.sent, ['200']);
      judgeClasses(result, ctx, good.sent);
    });
    return result;
  },
};

const overload: ChaosCase = {
  name: 'overload 10×',
  about: 'closed loop of 10 × the queue bound: fast coded rejections, admitted ones within the SLO, recovers',
  async run(ctx) {
    const result = emptyResult(this.name);
    const queueBound = 256;
    const options = { model: { batching: { max_queue_size: queueBound } } };
    await withServer(ctx, result, 'overload', options, async (server) => {
      const load = imageLoad(ctx, { port: server.httpPort, fresh: false, timeoutMs: 30_000 }, 10 * queueBound);
      await sleep(ctx.quick ? 3000 : 8000);
      const stopAt = performance.now();
      await load.stop();
      judgeAnswers(result, load.sent, [
        '200',
        '429 OFFRAMP_QUEUE_FULL',
        '429 OFFRAMP_OVERLOADED',
        '504 OFFRAMP_TIMED_OUT_IN_QUEUE',
      ]);
      const ok = load.sent.filter((s) => classOf(s) !== null).map((s) => s.endedMs - s.startedMs);
      ok.sort((a, b) => a - b);
      const rejected = load.sent
        .filter((s) => s.outcome.kind === 'answer' && s.outcome.status === 429)
        .map((s) => s.endedMs - s.startedMs)
        .sort((a, b) => a - b);
      result.notes.push(
        `admitted (200) latency p50 ${percentile(ok, 50).toFixed(1)} ms, p95 ${percentile(ok, 95).toFixed(1)} ms ` +
          `(SLO 50 ms at p95); 429 answered in p50 ${percentile(rejected, 50).toFixed(1)} ms`,
      );
      const engine = await serverLatency(server.baseUrl, 50);
      result.notes.push(
        `the server's engine answered ${(100 * engine.withinSlo).toFixed(0)} % of admitted requests within 50 ms ` +
          `(p95 ≤ ${engine.p95AtMostMs} ms, histogram bucket); the rest of the clients' wait is sockets and event loops`,
      );
      result.recoverMs = await timeToRecover(server.httpPort, ctx.images.bodies[0] as Buffer, stopAt);
    });
    return result;
  },
};

export const CHAOS_CASES: readonly ChaosCase[] = [
  startupFailures,
  workerFault('worker crash (2 workers)', 'crash-worker', 2),
  workerFault('worker crash (1 worker)', 'crash-worker', 1),
  workerFault('worker hang', 'hang-worker', 2),
  corruptHead,
  fuzzedHttp,
  overload,
  sigtermUnderLoad,
];
