// Replay decides as the live server does. The first 3,000 rows of the bundled Fashion-MNIST test
// split are recorded with the real recorder (src/engine/recorder.ts) and replayed through
// tuner/replay.ts; the same rows, in the same batches of 16, are served by a ModelRunner on the real
// executor (one worker thread, onnxruntime) with the guarded tuner attached on the serving thread,
// one batch at a time. Both are built from one SLO entry with the functions the server and
// `offramp replay` use (servingPlan, servedRampSet). The tuner's events (types, reasons, ramps
// dropped and added, thresholds) and the plan in force after every batch must be the same, and so
// must every window's exits, in release mode and in drop mode, where the executor's probe draws
// are seeded as replay's (WorkerPoolOptions.probeSeed, one worker: one stream draws every batch).
//
// The live scores are not always the recorded ones, bit for bit. The recording, like the
// prepared segments, cuts the backbone at every ramp; once a ramp set without some cut has run a
// batch, the executor re-splits the backbone at just the active ramps (backbone-runner.ts), and a
// segment that spans a former cut rounds differently in float32: here, after the tuner added ramp 4
// without ramp 3, ramp 4's scores and the final confidence differed by up to 7.7e-7 (about a dozen
// float32 ulps near 1); nothing else did, and no argmax. A threshold is a score some row had
// (window-eval.ts candidates), so a live threshold on such a ramp may sit that far from replay's:
// thresholds are compared within THRESHOLD_TOLERANCE, all else exactly.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTrace } from '../src/cli/replay-command.js';
import type { ModelConfig } from '../src/config/index.js';
import type { ExitPlan } from '../src/engine/backend.js';
import { WorkerPool } from '../src/engine/executor/worker-pool.js';
import { servingPlan } from '../src/engine/exit-plan.js';
import { LiveTuning, servedRampSet } from '../src/engine/live-tuning.js';
import { ModelRunner } from '../src/engine/model-runner.js';
import { recordTrace } from '../src/engine/recorder.js';
import { InputRows } from '../src/model/input-rows.js';
import { readManifest, type PreparedManifest } from '../src/model/manifest.js';
import { readNpy } from '../src/model/npy.js';
import type { ExitMode } from '../tuner/exit-policy.js';
import { isProbe, type FeedbackRecord } from '../tuner/feedback-record.js';
import { replayTrace, type ReplayEvent, type ReplayReport, type TraceHeader } from '../tuner/replay.js';
import type { TunerEvent } from '../tuner/tuner.js';
import { BUNDLED_DIR, bundledConfig, TEST_IMAGES } from './helpers/bundled.js';

const ROWS = 3000;
const BATCH = 16;
/**
 * A small window, so that within ROWS the guarded tuner tightens (drift and at-risk), re-tunes and
 * changes its ramp set (checked every 10 batches) in both modes; the probe shares of drop mode are
 * high enough that it does there too, and it settles (the share drops) before its ramp-set change.
 */
const WINDOW = 100;
const SHARES = { settled: 0.2, learning: 0.6 };
const SEED = 7;
/** Largest difference allowed between a live and a replayed threshold (see the top of the file). */
const THRESHOLD_TOLERANCE = 1e-6;

function servedConfig(mode: ExitMode): ModelConfig {
  return bundledConfig(
    'replay-live.test.yaml',
    [
      `accuracy: { window: ${WINDOW} }`,
      'tuner: { kind: guarded, interval_batches: 10 }',
      `exits: { mode: ${mode}, drop_feedback_fraction: ${SHARES.settled}, learning_feedback_fraction: ${SHARES.learning} }`,
      `batching: { max_batch_size: ${BATCH}, delay: work-conserving, max_queue_size: 8 }`,
      'slo: { latency_ms: 60000 }',
    ],
    'workers: 1, intra_op_threads: 1',
  ).models[0] as ModelConfig;
}

type ThresholdRecord = Record<number, number | null>;

/** A tuner event, and the rows served when it happened, as replay reports it (thresholds as a record). */
interface Decision {
  afterRow: number;
  event: ReplayEvent;
}

function asReplayEvent(event: TunerEvent): ReplayEvent {
  return event.type === 'retune' ? { ...event, thresholds: Object.fromEntries(event.thresholds) } : event;
}

function thresholdsOf(plan: ExitPlan): ThresholdRecord {
  return Object.fromEntries(plan.ramps.map((r) => [r.id, r.threshold]));
}

/** Equal but for numbers, which may differ by THRESHOLD_TOLERANCE. */
function close(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' && typeof b === 'number') return Math.abs(a - b) <= THRESHOLD_TOLERANCE;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => k in b && close((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** The first difference between two sequences of decisions, in words; null when they are the same. */
function firstDifference(live: readonly Decision[], replayed: readonly Decision[]): string | null {
  for (let i = 0; i < Math.max(live.length, replayed.length); i++) {
    if (!close(live[i], replayed[i]))
      return `decision ${i}: live ${JSON.stringify(live[i])}, replay ${JSON.stringify(replayed[i])}`;
  }
  return null;
}

/**
 * The thresholds the replayed tuner serves after each batch, from its events: a re-tune sets every
 * active ramp's, a tightening sends every active ramp to "never", a ramp-set change drops ramps and
 * adds one at "never" (tuner/tuner.ts, TunerEvent).
 */
function thresholdsAfterEachBatch(report: ReplayReport): ThresholdRecord[] {
  const current = new Map(Object.entries(report.startThresholds).map(([id, t]) => [Number(id), t]));
  const out: ThresholdRecord[] = [];
  const events = report.events;
  let next = 0;
  for (let end = BATCH; end < report.rows + BATCH; end += BATCH) {
    const batchEnd = Math.min(end, report.rows);
    for (; next < events.length && events[next]!.afterRow <= batchEnd; next++) {
      const event = events[next]!.event;
      if (event.type === 'retune') {
        current.clear();
        for (const [id, t] of Object.entries(event.thresholds)) current.set(Number(id), t);
      } else if (event.type === 'tighten') {
        for (const id of current.keys()) current.set(id, null);
      } else {
        for (const id of event.dropped) current.delete(id);
        if (event.added !== null) current.set(event.added, null);
      }
    }
    out.push(Object.fromEntries(current));
  }
  return out;
}

interface LiveRun {
  decisions: Decision[];
  /** The plan in force after each batch: plans[b] served batch b + 1. */
  plans: ExitPlan[];
  /** Every row's feedback record, in row order. */
  records: FeedbackRecord[];
  faults: unknown[];
}

/**
 * Serves `rows` in batches of BATCH, one at a time, as a server with `config` would: the served
 * plan, and the tuner as attachTuner builds it but on this thread (`thread: false`), so that each
 * batch's feedback is observed and any change applied before the next batch is formed.
 */
async function serveLive(
  manifest: PreparedManifest,
  config: ModelConfig,
  rows: InputRows,
  probeSeed: number,
): Promise<LiveRun> {
  const pool = await WorkerPool.start(BUNDLED_DIR, {
    workers: 1,
    intraOpThreads: 1,
    workerTimeoutMs: 60_000,
    probeSeed,
  });
  const runner = new ModelRunner(manifest, pool, {
    modelName: config.name,
    batching: config.batching,
    sloLatencyMs: config.slo.latencyMs,
    feedbackWindow: config.accuracy.window,
    plan: servingPlan(manifest, config),
  });
  const rampSet = servedRampSet(
    config,
    manifest.ramps.map((r) => r.id),
  );
  const tuning = new LiveTuning(runner, {
    kind: config.tuner.kind,
    profile: manifest.profile,
    accuracy: config.accuracy,
    ...(rampSet ? { rampSet } : {}),
    learningFeedbackFraction: config.exits.learningFeedbackFraction,
    thread: false,
  });
  const run: LiveRun = { decisions: [], plans: [], records: [], faults: [] };
  runner.onExecutorFaults = (faults) => {
    run.faults.push(...faults);
    tuning.onExecutorFaults(faults);
  };
  const tuner = tuning.tuner;
  if (!tuner) throw new Error(`tuner ${config.tuner.kind} is not an online tuner`);
  const applyChange = tuner.onChange;
  tuner.onChange = (events) => {
    for (const event of events) run.decisions.push({ afterRow: run.records.length, event: asReplayEvent(event) });
    applyChange?.(events);
  };
  const observe = runner.onFeedback;
  let batchDone: (() => void) | undefined;
  runner.onFeedback = (records) => {
    run.records.push(...records);
    observe?.(records);
    batchDone?.();
  };
  try {
    for (let start = 0; start < rows.rows; start += BATCH) {
      const indices = Array.from({ length: Math.min(BATCH, rows.rows - start) }, (_, i) => start + i);
      const input = Object.values(rows.feeds(indices))[0];
      if (!input) throw new Error('the model has no input');
      // A request whose rows all exited is answered before its batch is done: wait for both.
      const done = new Promise<void>((resolve) => (batchDone = resolve));
      await Promise.all([
        runner.submit(
          { kind: 'dense', rows: indices.length, data: input.data as Float32Array, rowShape: input.dims.slice(1) },
          { priority: 0 },
        ),
        done,
      ]);
      run.plans.push(runner.exitPlan);
    }
  } finally {
    await runner.drain();
    await tuning.close();
  }
  return run;
}

/** Replays the trace with the settings a server given `config` runs with, as `offramp replay --config` builds them. */
function replayAsServed(
  header: TraceHeader,
  records: readonly FeedbackRecord[],
  manifest: PreparedManifest,
  config: ModelConfig,
  overrides: { seed?: number; window?: number } = {},
): ReplayReport {
  const rampSet = servedRampSet(
    config,
    header.ramps.map((r) => r.id),
  );
  if (config.tuner.kind !== 'guarded') throw new Error('this test serves the guarded tuner');
  return replayTrace(header, records, {
    kind: 'guarded',
    start: config.tuner.start,
    budget: config.accuracy.budget,
    confidence: config.accuracy.confidence,
    window: overrides.window ?? config.accuracy.window,
    patience: config.exits.patience,
    activeRamps: servingPlan(manifest, config).ramps.map((r) => r.id),
    ...(rampSet ? { rampSet } : {}),
    feedback: {
      mode: config.exits.mode,
      settledShare: config.exits.dropFeedbackFraction,
      learningShare: config.exits.learningFeedbackFraction,
      seed: overrides.seed ?? SEED,
    },
    hindsight: false,
  });
}

/** Largest difference between a live score (or final confidence) and the recorded one; throws on a different argmax. */
function largestScoreDifference(live: readonly FeedbackRecord[], trace: readonly FeedbackRecord[]): number {
  let largest = 0;
  live.forEach((record, row) => {
    const recorded = trace[row] as FeedbackRecord;
    for (const reading of record.ramps) {
      const same = recorded.ramps.find((r) => r.id === reading.id);
      if (!same || same.argmax !== reading.argmax) throw new Error(`row ${row}: ramp ${reading.id} differs`);
      largest = Math.max(largest, Math.abs(same.score - reading.score));
    }
    if (record.final && recorded.final) {
      if (record.final.argmax !== recorded.final.argmax) throw new Error(`row ${row}: final answer differs`);
      largest = Math.max(largest, Math.abs(record.final.confidence - recorded.final.confidence));
    }
  });
  return largest;
}

describe('replay decides as the live server does (bundled model, real executor)', () => {
  let dir: string;
  let manifest: PreparedManifest;
  let rows: InputRows;
  let header: TraceHeader;
  let trace: FeedbackRecord[];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'offramp-replay-live-'));
    manifest = await readManifest(BUNDLED_DIR);
    rows = new InputRows(await readNpy(TEST_IMAGES), manifest.model.inputs[0]!, ROWS);
    const out = join(dir, 'trace.jsonl');
    const policy = servedConfig('release').exits.policy;
    await recordTrace({ modelDir: BUNDLED_DIR, rows, out, batchSize: BATCH, policy, intraOpThreads: 1 });
    ({ header, records: trace } = await readTrace(out));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** The live run and its replay make the same decisions, row for row; returns both for the mode's own checks. */
  async function expectSameDecisions(mode: ExitMode): Promise<{ live: LiveRun; report: ReplayReport }> {
    const config = servedConfig(mode);
    const live = await serveLive(manifest, config, rows, SEED);
    const report = replayAsServed(header, trace, manifest, config);
    expect(live.faults).toEqual([]);
    expect(live.records).toHaveLength(ROWS);
    expect(largestScoreDifference(live.records, trace)).toBeLessThan(THRESHOLD_TOLERANCE);

    // Both start from the served plan.
    expect(report.startThresholds).toEqual(thresholdsOf(servingPlan(manifest, config)));
    // The same events, after the same rows.
    expect(firstDifference(live.decisions, report.events)).toBeNull();
    // The tuner did all it can do within these rows, so the comparison covers all of it.
    expect(new Set(report.events.map((e) => e.event.type))).toEqual(new Set(['retune', 'tighten', 'ramps']));
    // The same plan after every batch; the trajectory (the replayed tuner's own thresholds when a
    // window closes, mid-batch: those in force for that batch) agrees with the live plans.
    const replayed = thresholdsAfterEachBatch(report);
    expect(replayed).toHaveLength(live.plans.length);
    live.plans.forEach((plan, b) => {
      if (!close(thresholdsOf(plan), replayed[b]))
        expect.fail(
          `after batch ${b}: live ${JSON.stringify(thresholdsOf(plan))}, replay ${JSON.stringify(replayed[b])}`,
        );
    });
    for (const { afterRow, thresholds } of report.trajectory) {
      const batch = Math.floor((afterRow - 1) / BATCH);
      const inForce = batch === 0 ? report.startThresholds : thresholdsOf(live.plans[batch - 1] as ExitPlan);
      expect(close(inForce, thresholds), `window ending at row ${afterRow}`).toBe(true);
    }
    // The same rows fed back, and every window's rows answered at the same ramps.
    expect(live.records.filter(isProbe).length).toBe(report.feedbackRows);
    for (const w of report.windows) {
      const exits: Record<number, number> = {};
      for (const record of live.records.slice(w.startRow, w.startRow + w.rows))
        if (record.exit >= 0) exits[record.exit] = (exits[record.exit] ?? 0) + 1;
      const replayedExits = Object.fromEntries(
        Object.entries(w.exitRates).map(([id, rate]) => [id, Math.round(rate * w.rows)]),
      );
      expect(exits, `window ${w.index}`).toEqual(replayedExits);
    }
    return { live, report };
  }

  it('release mode: the same events, plans and exits', async () => {
    const { live, report } = await expectSameDecisions('release');
    expect(report.feedbackRows).toBe(ROWS);
    // Negative controls: the comparison fails on a replay that decides otherwise (another
    // window); the seed draws nothing in release mode, so another one changes nothing.
    const config = servedConfig('release');
    const otherWindow = replayAsServed(header, trace, manifest, config, { window: WINDOW + 20 });
    expect(firstDifference(live.decisions, otherWindow.events)).not.toBeNull();
    const otherSeed = replayAsServed(header, trace, manifest, config, { seed: SEED + 1 });
    expect(firstDifference(live.decisions, otherSeed.events)).toBeNull();
  });

  it('drop mode, the executor seeded as replay: the same probes, events, plans and exits', async () => {
    const { live, report } = await expectSameDecisions('drop');
    // The share drawn changed with the tuner's demand (learning, then settled, then learning
    // again after the ramp-set change), and the draws still matched.
    expect(new Set(live.plans.map((p) => p.feedbackFraction))).toEqual(new Set([SHARES.settled, SHARES.learning]));
    expect(report.feedbackRows).toBeLessThan(ROWS);
    // Negative control: replayed with another seed, other rows are probes and the tuner decides otherwise.
    const otherSeed = replayAsServed(header, trace, manifest, servedConfig('drop'), { seed: SEED + 1 });
    expect(otherSeed.feedbackRows).not.toBe(report.feedbackRows);
    expect(firstDifference(live.decisions, otherSeed.events)).not.toBeNull();
  });
});
