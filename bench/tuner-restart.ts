/**
 * How soon a restarted server answers early again, with and without the tuner state it saved
 * (`server.state_dir`, src/engine/tuner-state-file.ts), for the guarded tuner starting from
 * "never" and from its calibrated start (`tuner.start`). Per start:
 *
 *  1. a server on an empty state folder serves `--before` requests; its early-exit share over the
 *     last 1,000 of them is the pre-restart share; it is closed gracefully (which saves the state);
 *  2. a server on that folder, then one on an empty folder, each serve the same next requests
 *     until the early-exit share of a block of `--block` requests reaches 80 % of the pre-restart
 *     share (at most `--after` requests): the requests, and the seconds, that took, and the
 *     early-exit share of their first block.
 *
 * The bundled image model, SLO file defaults otherwise (drop mode, budget 1 % over 1,000-row
 * windows at 95 %, 2 workers) but a 5 s latency objective, so that no request times out; one-row
 * requests from the Fashion-MNIST test images in order, `--concurrency` in flight, sent from this
 * process (in-process servers, as the tests start them: the figures are request counts first,
 * times second).
 *
 *   npx tsx bench/tuner-restart.ts [--before 5000] [--after 4000] [--block 100] [--concurrency 4]
 *                                  [--starts never,calibrated]
 *
 * Prints a table; writes nothing. About two minutes on 2 cores.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseServingConfig } from '../src/config/index.js';
import type { ExitsReport } from '../src/data-plane/types.js';
import { readManifest } from '../src/model/manifest.js';
import { InputRows } from '../src/model/input-rows.js';
import { readNpy } from '../src/model/npy.js';
import { startServer, type RunningServer } from '../src/server.js';
import { finishProvenance, provenance, provenanceLine, writeResultPair } from './lib/machine.js';

const { values: args } = parseArgs({
  options: {
    before: { type: 'string', default: '5000' },
    after: { type: 'string', default: '4000' },
    block: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '4' },
    starts: { type: 'string', default: 'never,calibrated' },
    rounds: { type: 'string', default: '2' },
    out: { type: 'string', default: 'bench/results' },
  },
});
const ROUNDS = Number(args.rounds);
const started = new Date();
const origin = provenance();
const BEFORE = Number(args.before);
const AFTER = Number(args.after);
const BLOCK = Number(args.block);
const CONCURRENCY = Number(args.concurrency);
const SHARE_OF_PRE = 0.8;
const PRE_WINDOW = 1000;

const root = (relative: string) => fileURLToPath(new URL(`../${relative}`, import.meta.url));
const MODEL_DIR = root('models/fmnist-resnet');
const manifest = await readManifest(MODEL_DIR);
const input = manifest.model.inputs[0];
if (!input) throw new Error(`${MODEL_DIR}: the manifest names no input`);
const images = new InputRows(await readNpy(root('models/data/fashion-mnist/test-images.npy.gz')), input);
const bodies = Array.from({ length: images.rows }, (_, i) => {
  const row = images.gather([i]);
  return JSON.stringify({
    inputs: [{ name: 'pixels', shape: row.dims, datatype: 'FP32', data: Array.from(row.data as Float32Array) }],
  });
});

async function serve(stateDir: string, start: string): Promise<{ server: RunningServer; base: string }> {
  const config = parseServingConfig(
    [
      `server: { http_port: 0, grpc_port: 0, host: 127.0.0.1, state_dir: ${JSON.stringify(stateDir)} }`,
      'models:',
      '  - name: fmnist',
      `    path: ${JSON.stringify(MODEL_DIR)}`,
      `    tuner: { kind: guarded, start: ${start} }`,
      // Requests wait as long as they must: on a machine busy with other work the default 50 ms
      // would time some out in the queue, and what is measured is when exits open, not latency.
      '    slo: { latency_ms: 5000 }',
    ].join('\n'),
    'tuner-restart.yaml',
  );
  const server = await startServer(config, { version: 'bench' });
  return { server, base: `http://127.0.0.1:${server.httpPort}` };
}

/**
 * Sends requests `from`, `from` + 1, … (test images in order, cycling) with CONCURRENCY in flight,
 * until `done(exits)` says so or `max` were sent; the exit of each, in the order sent.
 */
async function drive(base: string, from: number, max: number, done: (exits: number[]) => boolean): Promise<number[]> {
  const exits: number[] = [];
  let next = 0;
  let stop = false;
  const worker = async () => {
    while (!stop && next < max) {
      const i = next++;
      const res = await fetch(`${base}/v2/models/fmnist/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: bodies[(from + i) % bodies.length] as string,
      });
      const json = (await res.json()) as { parameters?: { exit_ramp?: number } };
      if (res.status !== 200) throw new Error(`request ${from + i}: HTTP ${res.status} ${JSON.stringify(json)}`);
      exits[i] = json.parameters?.exit_ramp ?? -1;
      // Judged on the requests answered in order so far.
      let answered = 0;
      while (answered < exits.length && exits[answered] !== undefined) answered++;
      if (done(exits.slice(0, answered))) stop = true;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return exits;
}

const percent = (x: number) => `${(x * 100).toFixed(1)} %`;
const earlyShare = (exits: readonly number[]) => exits.filter((e) => e >= 0).length / Math.max(1, exits.length);

/** Requests until a block's early share reached `target` (null: not within AFTER), and the seconds it took. */
async function timeToOpen(
  stateDir: string,
  start: string,
  from: number,
  target: number,
): Promise<{
  requests: number | null;
  seconds: number | null;
  firstBlock: number;
  restored: ExitsReport['tuner']['restored'];
}> {
  const { server, base } = await serve(stateDir, start);
  try {
    const restored = ((await (await fetch(`${base}/v2/models/fmnist/exits`)).json()) as ExitsReport).tuner.restored;
    const began = performance.now();
    const reached: { requests: number | null; seconds: number | null } = { requests: null, seconds: null };
    // Answers come in a little out of order: each block is judged once all of it is answered.
    let judged = 0;
    const exits = await drive(base, from, AFTER, (answered) => {
      for (; reached.requests === null && judged + BLOCK <= answered.length; judged += BLOCK)
        if (earlyShare(answered.slice(judged, judged + BLOCK)) >= target) {
          reached.requests = judged + BLOCK;
          reached.seconds = (performance.now() - began) / 1000;
        }
      return reached.requests !== null;
    });
    return { ...reached, firstBlock: earlyShare(exits.slice(0, BLOCK)), restored };
  } finally {
    await server.close();
  }
}

const rows: string[] = [];
const folders: string[] = [];
try {
  for (let round = 1; round <= ROUNDS; round++)
    for (const start of args.starts.split(',')) {
      const stateDir = await mkdtemp(join(tmpdir(), 'offramp-restart-'));
      const emptyDir = await mkdtemp(join(tmpdir(), 'offramp-restart-empty-'));
      folders.push(stateDir, emptyDir);
      const first = await serve(stateDir, start);
      let pre: number;
      try {
        pre = earlyShare((await drive(first.base, 0, BEFORE, () => false)).slice(-PRE_WINDOW));
      } finally {
        await first.server.close();
      }
      const target = SHARE_OF_PRE * pre;
      const saved = await timeToOpen(stateDir, start, BEFORE, target);
      const fresh = await timeToOpen(emptyDir, start, BEFORE, target);
      const show = (r: { requests: number | null; seconds: number | null; firstBlock: number }) =>
        `${percent(r.firstBlock)} | ` +
        (r.requests === null ? `> ${AFTER} | –` : `${r.requests} | ${(r.seconds as number).toFixed(1)}`);
      const recheck = saved.restored?.recheck;
      rows.push(
        `| ${start} | ${round} | ${percent(pre)} | ${show(saved)} | ${show(fresh)} | ` +
          `${recheck ? `${recheck.passed ? 'passed' : 'failed'}, ${saved.restored?.rows} rows` : 'none'} |`,
      );
      console.error(`${start}, round ${round}: done`);
    }
} finally {
  await Promise.all(folders.map((dir) => rm(dir, { recursive: true, force: true })));
}
const report = [
  `# Tuner state across a restart (${started.toISOString()})`,
  '',
  provenanceLine(origin),
  '',
  `After a restart: the early-exit share of the first ${BLOCK} requests, and the requests (and seconds) until a ` +
    `block of ${BLOCK} answers early at 80 % of the pre-restart share (last ${PRE_WINDOW} of ${BEFORE} requests); ` +
    `${CONCURRENCY} in flight, one row each; ${ROUNDS} rounds, each a fresh pair of servers.`,
  '',
  '| tuner.start | round | pre-restart early share | with saved state: first block | requests | s | ' +
    'without: first block | requests | s | re-check |',
  '|---|---|---|---|---|---|---|---|---|---|',
  ...rows,
].join('\n');
console.log(report);
const base = await writeResultPair(resolve(args.out), 'tuner-restart', started, report, {
  provenance: finishProvenance(origin),
  before: BEFORE,
  after: AFTER,
  block: BLOCK,
  concurrency: CONCURRENCY,
  rounds: ROUNDS,
  rows,
});
console.log(`wrote ${base}.md and .json`);
