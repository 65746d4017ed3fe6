/**
 * Open-loop HTTP load: sends each request at its scheduled time (Poisson or bursty arrivals
 * computed by the parent), regardless of how many are still outstanding — as independent users
 * would. A closed-loop client slows down when the server does and so hides queueing; this one
 * does not. Runs as its own process so its CPU does not land on the server's event loop.
 *
 *   node --import tsx bench/load/open-loop-client.ts JOB.json
 *
 * JOB.json is an OpenLoopJob; the child writes an OpenLoopResult to job.outPath and exits.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { createPoster, type PostResult } from './http-post.js';
import { loadBodies } from './request-body.js';
import type { OpenLoopJob, OpenLoopResult } from './load-types.js';

/** Enough sockets that the client never queues a request behind another: the server's queue decides. */
const MAX_SOCKETS = 2048;
/** Time to settle after loading the bodies, before the first scheduled send. */
const START_DELAY_MS = 100;

const jobPath = process.argv[2];
if (!jobPath) throw new Error('usage: open-loop-client.ts JOB.json');
const job = JSON.parse(readFileSync(jobPath, 'utf8')) as OpenLoopJob;
const bodies = loadBodies(readFileSync(job.bodiesPath, 'utf8'), job.body);
const poster = createPoster(job.url, MAX_SOCKETS, job.timeoutMs);
const n = job.offsetsMs.length;

const result: OpenLoopResult = {
  latencyMs: new Array<number>(n).fill(Number.NaN),
  sendLagMs: new Array<number>(n).fill(Number.NaN),
  status: new Array<number>(n).fill(0),
  predicted: new Array<number>(n).fill(-1),
  exitRamp: new Array<number | null>(n).fill(null),
  tier: new Array<number | null>(n).fill(null),
  errorCode: new Array<string | null>(n).fill(null),
  elapsedS: 0,
};

interface ResponseJson {
  outputs?: { name: string; data: unknown[] }[];
  parameters?: { tier?: unknown };
  code?: string;
}

function record(i: number, answer: PostResult, latencyMs: number): void {
  result.latencyMs[i] = latencyMs;
  result.status[i] = answer.status;
  let json: ResponseJson = {};
  try {
    json = JSON.parse(answer.body) as ResponseJson;
  } catch {
    // An unparsable body (or none, status 0) leaves the defaults: no class, no exit.
  }
  if (answer.status === 200) {
    const first = (name: string): number => Number(json.outputs?.find((o) => o.name === name)?.data[0] ?? Number.NaN);
    result.predicted[i] = first('class');
    result.exitRamp[i] = first('exit_ramp');
    const tier = json.parameters?.tier;
    result.tier[i] = typeof tier === 'number' ? tier : null;
  } else {
    result.errorCode[i] = json.code ?? answer.failure ?? null;
  }
}

let outstanding = 0;
let next = 0;
let lastAnswerMs = 0;
const t0 = performance.now() + START_DELAY_MS;

await new Promise<void>((done) => {
  const send = (i: number, nowMs: number): void => {
    const due = job.offsetsMs[i] as number;
    result.sendLagMs[i] = nowMs - due;
    outstanding++;
    void poster.post(bodies[job.items[i] as number]!).then((answer) => {
      const at = performance.now() - t0;
      record(i, answer, at - due);
      lastAnswerMs = Math.max(lastAnswerMs, at);
      outstanding--;
      if (outstanding === 0 && next >= n) done();
    });
  };
  // Send everything that is due, then sleep until the next arrival. Timers fire late by up to a
  // millisecond or so; latency still counts from the scheduled time.
  const tick = (): void => {
    const now = performance.now() - t0;
    while (next < n && (job.offsetsMs[next] as number) <= now) send(next++, now);
    if (next < n) setTimeout(tick, Math.max(0, (job.offsetsMs[next] as number) - (performance.now() - t0)));
    else if (outstanding === 0) done();
  };
  setTimeout(tick, START_DELAY_MS);
});

result.elapsedS = (lastAnswerMs - (job.offsetsMs[0] ?? 0)) / 1000;
writeFileSync(job.outPath, JSON.stringify(result));
poster.close();
