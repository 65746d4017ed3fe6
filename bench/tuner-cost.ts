/**
 * What the guarded tuner costs, in this tree and in a baseline commit (by default the one before
 * the path tallies: the tuner that re-decided its whole tuning window at every re-tune), on the
 * rows of a recorded trace, drawn with replacement (stationary traffic):
 *
 *  (a) one re-tune at full history (the history holds its 30 windows: the tuning window tests, 20
 *      older windows learn), for 1, 3 and 8 ramps: the time of every `observe` that re-tuned,
 *      over a whole number of learning periods (the path is learned again every 20 re-tunes);
 *      those that did not learn are the test alone, the mean is the cost per re-tune with
 *      learning amortized. Release-mode rows, hindsight off (it is reported in b).
 *  (b) the tuner thread's CPU at `--rate` requests a second, in batches of the trace's batch
 *      size: the rows a live server feeds it — drop mode (the default: only probes, 10 % of rows
 *      once the tuner has settled, 50 % while it learns; src/engine/live-tuning.ts) and release
 *      mode (every row) — and, as the worker does (src/engine/tuner-worker.ts), its estimates
 *      read after a change or every 8 quiet batches. Two tuners: the guarded tuner alone on 3
 *      ramps (as in a), and as served by default (SLO file defaults: hindsight estimates, and
 *      ramp-set checks every 30 batches for up to 3 ramps within 10 % of the model's latency).
 *      CPU is process.cpuUsage around each `observe` (every thread of the process: the garbage
 *      collector's helpers included), wall time beside it.
 * Each tuner is first fed 32,000 rows (untimed; `--warm-up-rows`), so its history is full when
 * timing starts.
 *
 *   npx tsx bench/tuner-cost.ts [--trace test/fixtures/traces/fmnist-stationary.jsonl.gz]
 *                               [--baseline REV|none] [--ramps "3;0,3,5;0,1,2,3,4,5,6,7"]
 *                               [--retunes 60] [--rate 1000] [--drop-seconds 300]
 *                               [--release-seconds 60] [--warm-up-rows 32000] [--out bench/results]
 *
 * The baseline's tuner/ is taken from git (`git archive`) into a temporary directory and loaded
 * from there; tuner/ imports nothing from outside itself, so it runs as it did then. Writes
 * bench/results/tuner-cost-<UTC start>.md and .json with the provenance (bench/lib/machine.ts).
 * Run it on an otherwise idle machine: the figures are CPU times of one thread.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { readTrace, resampleRecords } from '../src/cli/replay-command.js';
import { seededRandom } from '../src/model/numeric.js';
import type * as CreateTuner from '../tuner/create-tuner.js';
import { createTuner } from '../tuner/create-tuner.js';
import type { FeedbackRecord } from '../tuner/feedback-record.js';
import type { GuardedTunerOptions, Tuner } from '../tuner/tuner.js';
import { decideExit } from '../tuner/window-eval.js';
import { finishProvenance, provenance, provenanceLine, writeResultPair } from './lib/machine.js';
import { percentile } from './lib/stats.js';

const { values: args } = parseArgs({
  options: {
    trace: { type: 'string', default: 'test/fixtures/traces/fmnist-stationary.jsonl.gz' },
    baseline: { type: 'string' },
    ramps: { type: 'string', default: '3;0,3,5;0,1,2,3,4,5,6,7' },
    retunes: { type: 'string', default: '60' },
    rate: { type: 'string', default: '1000' },
    'drop-seconds': { type: 'string', default: '300' },
    'release-seconds': { type: 'string', default: '60' },
    'warm-up-rows': { type: 'string', default: '32000' },
    out: { type: 'string', default: 'bench/results' },
  },
});

/** The guarded tuner learns its path again every 20 re-tunes (half a tuning window / a quarter window). */
const RETUNES_PER_LEARNING = 20;
/** Drop mode's probe shares (the SLO file defaults exits.drop_feedback_fraction and learning_feedback_fraction). */
const SETTLED_PROBES = 0.1;
const LEARNING_PROBES = 0.5;
/** The worker posts its state after a change or every this many quiet batches (src/engine/tuner-worker.ts). */
const QUIET_EVERY = 8;

interface Code {
  name: 'current' | 'baseline';
  /** The commit the code was taken from (current: HEAD, with or without local changes). */
  commit: string;
  createTuner: typeof CreateTuner.createTuner;
}

const started = new Date();
const origin = provenance();
const { header, records } = await readTrace(resolve(args.trace));
const rule = { policy: header.policy, patience: 2 };
const allRamps = header.ramps.map((r) => r.id).sort((a, b) => a - b);
const rampSets = args.ramps.split(';').map((set) => set.split(',').map(Number));
const retunes = Math.ceil(Number(args.retunes) / RETUNES_PER_LEARNING) * RETUNES_PER_LEARNING;
const rate = Number(args.rate);
const batchSize = header.batch_size;
/** Rows fed before timing: the guarded tuner keeps 30 windows of 1,000 (tuning window and learning rows). */
const warmUpRows = Number(args['warm-up-rows']);

const codes: Code[] = [{ name: 'current', commit: gitRev('HEAD'), createTuner }];
let baselineDir: string | null = null;
const baselineRev = args.baseline ?? defaultBaseline();
if (baselineRev !== 'none') {
  baselineDir = await mkdtemp(join(tmpdir(), 'offramp-tuner-baseline-'));
  const commit = gitRev(baselineRev);
  execFileSync('tar', ['-x', '-C', baselineDir], {
    input: execFileSync('git', ['archive', '--format=tar', commit, 'tuner'], { maxBuffer: 1 << 28 }),
  });
  const module = (await import(
    pathToFileURL(join(baselineDir, 'tuner', 'create-tuner.ts')).href
  )) as typeof CreateTuner;
  codes.push({ name: 'baseline', commit, createTuner: module.createTuner });
}

function gitRev(rev: string): string {
  return execFileSync('git', ['rev-parse', rev], { encoding: 'utf8' }).trim();
}

/** The parent of the commit that added tuner/path-tally.ts (HEAD while it is not committed). */
function defaultBaseline(): string {
  const added = execFileSync('git', ['log', '--diff-filter=A', '--format=%H', '--', 'tuner/path-tally.ts'], {
    encoding: 'utf8',
  })
    .trim()
    .split('\n')
    .filter(Boolean);
  const first = added[added.length - 1];
  return first ? `${first}^` : 'HEAD';
}

function guardedOptions(activeRamps: number[], served: boolean): GuardedTunerOptions {
  return {
    kind: 'guarded',
    rule,
    profile: header.profile,
    budget: 0.01,
    confidence: 0.95,
    window: 1000,
    activeRamps,
    ...(served
      ? { rampSet: { availableRamps: allRamps, maxRamps: 3, rampBudget: 0.1, checkEveryBatches: 30 } }
      : { hindsight: false }),
  };
}

/** Traffic: batches of the trace's rows drawn with replacement (seeded: every code sees the same rows). */
function traffic(rows: number, seed: number): () => FeedbackRecord[] {
  const stream = resampleRecords(records, rows, seed);
  let next = 0;
  return () => {
    const batch = stream.slice(next, next + batchSize);
    next += batchSize;
    if (batch.length < batchSize) throw new Error('traffic ran out: raise its row count');
    return batch;
  };
}

/** A batch as the server answers it under the tuner's thresholds: the exit taken, the readings of the active ramps (tuner/replay.ts). */
function served(tuner: Tuner, batch: readonly FeedbackRecord[]): FeedbackRecord[] {
  const ramps = tuner.activeRamps;
  const active = new Set(ramps);
  return batch.map((record) => ({
    ...record,
    exit: decideExit(record, ramps, tuner.thresholds, rule).exit,
    ramps: record.ramps.filter((r) => active.has(r.id)),
  }));
}

function warmUp(tuner: Tuner, next: () => FeedbackRecord[]): void {
  for (let fed = 0; fed < warmUpRows; fed += batchSize) tuner.observe(served(tuner, next()));
}

/** The learned path's `learnedAt`: a private field of the guarded tuner (both codes have it), read to tell re-tunes that learned. */
function learnedAt(tuner: Tuner): number {
  const path = (tuner as unknown as { path?: { learnedAt: number } | null }).path;
  if (path === undefined) throw new Error("the guarded tuner no longer has a private 'path': update learnedAt()");
  return path?.learnedAt ?? -1;
}

interface RetuneCost {
  ramps: number[];
  code: Code['name'];
  /** ms per re-tune, in order, and whether it learned the path. */
  ms: number[];
  learned: boolean[];
  tightenings: number;
}

function retuneCost(code: Code, ramps: number[]): RetuneCost {
  const tuner = code.createTuner(guardedOptions(ramps, false));
  const next = traffic(warmUpRows + (retunes + 4) * 260, 11);
  warmUp(tuner, next);
  const ms: number[] = [];
  const learned: boolean[] = [];
  let tightenings = 0;
  while (ms.length < retunes) {
    const batch = served(tuner, next());
    const before = learnedAt(tuner);
    const t0 = performance.now();
    const events = tuner.observe(batch);
    const elapsed = performance.now() - t0;
    tightenings += events.filter((e) => e.type === 'tighten').length;
    if (!events.some((e) => e.type === 'retune')) continue;
    ms.push(elapsed);
    learned.push(learnedAt(tuner) !== before);
  }
  return { ramps, code: code.name, ms, learned, tightenings };
}

interface CpuShare {
  mode: 'drop' | 'release';
  tuner: 'guarded' | 'served';
  code: Code['name'];
  seconds: number;
  rowsFed: number;
  cpuMs: number;
  wallMs: number;
  retunes: number;
  tightenings: number;
  rampChanges: number;
  activeRampsAtEnd: number[];
}

function cpuShare(code: Code, mode: CpuShare['mode'], kind: CpuShare['tuner'], seconds: number): CpuShare {
  const tuner = code.createTuner(guardedOptions([0, 3, 5], kind === 'served'));
  const batches = Math.round((seconds * rate) / batchSize);
  const next = traffic(warmUpRows + batches * batchSize + batchSize, 12);
  warmUp(tuner, next);
  const random = seededRandom(13);
  let rowsFed = 0;
  let cpuMicros = 0;
  let wallMs = 0;
  let retuneCount = 0;
  let tightenings = 0;
  let rampChanges = 0;
  let quiet = 0;
  let learning = tuner.learning;
  for (let b = 0; b < batches; b++) {
    const batch = served(tuner, next());
    // Drop mode: each row is drawn as a probe before its batch runs; only probes reach the tuner.
    const share = tuner.learning ? LEARNING_PROBES : SETTLED_PROBES;
    const fed = mode === 'release' ? batch : batch.filter(() => random() < share).map((r) => ({ ...r, probe: true }));
    if (fed.length === 0) continue;
    rowsFed += fed.length;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const events = tuner.observe(fed);
    if (events.length > 0 || tuner.learning !== learning || ++quiet >= QUIET_EVERY) {
      quiet = 0;
      learning = tuner.learning;
      void tuner.estimates;
    }
    wallMs += performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    cpuMicros += cpu.user + cpu.system;
    retuneCount += events.filter((e) => e.type === 'retune').length;
    tightenings += events.filter((e) => e.type === 'tighten').length;
    rampChanges += events.filter((e) => e.type === 'ramps').length;
  }
  return {
    mode,
    tuner: kind,
    code: code.name,
    seconds,
    rowsFed,
    cpuMs: cpuMicros / 1000,
    wallMs,
    retunes: retuneCount,
    tightenings,
    rampChanges,
    activeRampsAtEnd: [...tuner.activeRamps],
  };
}

const median = (xs: number[]): number =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );
const p90 = (xs: number[]): number =>
  percentile(
    [...xs].sort((a, b) => a - b),
    90,
  );
const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length);

const retuneCosts: RetuneCost[] = [];
for (const ramps of rampSets)
  for (const code of codes) {
    const cost = retuneCost(code, ramps);
    retuneCosts.push(cost);
    console.log(`(a) ${ramps.length} ramps, ${code.name}: median ${median(cost.ms).toFixed(2)} ms`);
  }
const shares: CpuShare[] = [];
for (const mode of ['drop', 'release'] as const)
  for (const kind of ['guarded', 'served'] as const)
    for (const code of codes) {
      const share = cpuShare(code, mode, kind, Number(args[mode === 'drop' ? 'drop-seconds' : 'release-seconds']));
      shares.push(share);
      console.log(`(b) ${mode}, ${kind}, ${code.name}: ${(share.cpuMs / share.seconds).toFixed(1)} CPU ms per second`);
    }
if (baselineDir) await rm(baselineDir, { recursive: true, force: true });

const lines: string[] = [];
const row = (cells: (string | number)[]): string => `| ${cells.join(' | ')} |`;
const ms = (x: number): string => x.toFixed(2);
const codeLabel = (name: Code['name']): string => {
  const code = codes.find((c) => c.name === name) as Code;
  return name === 'current'
    ? `this tree (${code.commit.slice(0, 10)}${origin.clean === false ? ' + local changes' : ''})`
    : `baseline ${code.commit.slice(0, 10)}`;
};
lines.push('# What the guarded tuner costs', '', provenanceLine(finishProvenance(origin)), '');
lines.push(
  `Trace ${args.trace} (${records.length} rows, drawn with replacement), batches of ${batchSize}, budget 1 % per ` +
    `1,000-row window at 95 %; every tuner fed ${warmUpRows.toLocaleString('en')} rows before timing.`,
  '',
);
lines.push(
  `## (a) One re-tune at full history`,
  '',
  `${retunes} re-tunes each (${retunes / RETUNES_PER_LEARNING} of them learn the path again), release-mode rows, ` +
    'hindsight off. "test": re-tunes that did not learn; "learning": those that did; "per re-tune": the mean of all, ' +
    'learning amortized.',
  '',
);
lines.push(
  row(['ramps', 'code', 'median ms', 'p90 ms', 'test median ms', 'learning re-tune median ms', 'per re-tune ms']),
);
lines.push(row(['---', '---', '---', '---', '---', '---', '---']));
for (const c of retuneCosts) {
  const test = c.ms.filter((_, i) => !c.learned[i]);
  const learning = c.ms.filter((_, i) => c.learned[i]);
  lines.push(
    row([
      c.ramps.length,
      codeLabel(c.code),
      ms(median(c.ms)),
      ms(p90(c.ms)),
      ms(median(test)),
      learning.length > 0 ? ms(median(learning)) : '–',
      ms(mean(c.ms)),
    ]) + (c.tightenings > 0 ? ` (${c.tightenings} tightenings while timed)` : ''),
  );
}
lines.push(
  '',
  `## (b) The tuner thread at ${rate.toLocaleString('en')} requests a second`,
  '',
  'CPU ms per second of traffic (process CPU around `observe` and the estimates read), and as a share of one core; ' +
    'wall ms per second beside it. guarded: the guarded tuner alone on ramps 0, 3, 5, hindsight off; served: as ' +
    'served by default (hindsight estimates, ramp-set checks every 30 batches).',
  '',
);
lines.push(
  row(['mode', 'tuner', 'code', 'seconds', 'rows fed / s', 're-tunes', 'CPU ms / s', '% of a core', 'wall ms / s']),
);
lines.push(row(['---', '---', '---', '---', '---', '---', '---', '---', '---']));
for (const s of shares) {
  lines.push(
    row([
      s.mode,
      s.tuner,
      codeLabel(s.code),
      s.seconds,
      (s.rowsFed / s.seconds).toFixed(0),
      s.retunes,
      (s.cpuMs / s.seconds).toFixed(2),
      `${((s.cpuMs / s.seconds / 1000) * 100).toFixed(2)} %`,
      (s.wallMs / s.seconds).toFixed(2),
    ]) +
      (s.tightenings + s.rampChanges > 0
        ? ` (${s.tightenings} tightenings, ${s.rampChanges} ramp-set changes; ramps at the end ${s.activeRampsAtEnd.join(', ')})`
        : ''),
  );
}
const report = lines.join('\n');
console.log(`\n${report}`);
const base = await writeResultPair(resolve(args.out), 'tuner-cost', started, report, {
  provenance: finishProvenance(origin),
  trace: args.trace,
  codes: codes.map(({ name, commit }) => ({ name, commit })),
  rate,
  retunes: retuneCosts,
  cpu: shares,
});
console.log(`wrote ${base}.md and .json`);
