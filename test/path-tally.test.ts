// Running tallies of a learned path (tuner/path-tally.ts): a tally's figures for every setting
// are those of a WindowEvaluator on the same rows, however rows came and went; and the guarded
// tuner testing its path on tallies chooses exactly what it chose re-deciding the whole tuning
// window (`pathTally: false`), replay by replay on the bundled model's recorded traces.
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readTrace, resampleRecords } from '../src/cli/replay-command.js';
import type { ExitRule } from '../tuner/exit-policy.js';
import type { FeedbackRecord } from '../tuner/feedback-record.js';
import { GuardedTuner } from '../tuner/guarded-tuner.js';
import { learnPath, testPath, testPathTally, type GuardedChoice } from '../tuner/guarded.js';
import { KeyedRows, PathTally } from '../tuner/path-tally.js';
import { replayTrace, type ReplayOptions, type TraceHeader } from '../tuner/replay.js';
import { WindowEvaluator, type WindowEvalOptions } from '../tuner/window-eval.js';
import { syntheticProfile, syntheticTrace } from './fixtures/synthetic-trace.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/traces/${name}`, import.meta.url));

describe('KeyedRows', () => {
  it('is a queue with lookup by key', () => {
    const rows = new KeyedRows();
    const record = (t: number): FeedbackRecord => ({ t, batchSize: 1, exit: -1, ramps: [], final: null });
    for (let k = 0; k < 3000; k += 3) rows.push(k, record(k));
    expect(rows.length).toBe(1000);
    expect(rows.indexOfKey(4)).toBe(2);
    expect(rows.indexOfKey(-5)).toBe(0);
    expect(rows.indexOfKey(1e9)).toBe(1000);
    rows.dropBefore(2400);
    expect(rows.length).toBe(200);
    expect(rows.keyAt(0)).toBe(2400);
    expect(rows.at(1).t).toBe(2403);
    expect(rows.shift()?.t).toBe(2400);
    expect(rows.slice(0, 2).map((r) => r.t)).toEqual([2403, 2406]);
    expect(rows.lastKey).toBe(2997);
    expect(() => rows.push(2997, record(0))).toThrow(RangeError);
  });
});

describe('PathTally', () => {
  const rule: ExitRule = { policy: 'confidence', patience: 2 };
  const { records } = syntheticTrace({ rows: 6000, seed: 3 });
  // Some rows without a final answer (drop mode's non-probes): counted nowhere but in the rows.
  const rows = records.map((r, i) => (i % 7 === 3 ? { ...r, final: null } : r));

  function pathFor(options: WindowEvalOptions): Float64Array[] {
    const fit = new WindowEvaluator(records.slice(0, 3000), { ...options, smoothDisagreement: true });
    return learnPath(fit, { budget: 0.02 });
  }

  it('gives every setting the figures a WindowEvaluator gives it on the same rows, as rows come and go', () => {
    for (const [activeRamps, policyRule] of [
      [[0, 2, 5], rule],
      [[1, 3, 4, 6], { policy: 'patience', patience: 2 } as ExitRule],
      [[4], rule],
    ] as const) {
      const options: WindowEvalOptions = { activeRamps, rule: policyRule, profile: syntheticProfile() };
      const path = pathFor(options);
      expect(path.length).toBeGreaterThan(10);
      const tally = new PathTally(path, options);
      const passed: number[] = [];
      // A sliding window of 1,500 rows moving by uneven steps over the last 3,000.
      let from = 3000;
      let to = 3000;
      for (const step of [700, 1, 900, 333, 1500, 250, 4]) {
        to = Math.min(rows.length, to + step);
        for (let i = tally.rows > 0 ? tally.lastKey + 1 : from; i < to; i++) tally.add(i, rows[i] as FeedbackRecord);
        from = Math.max(from, to - 1500);
        tally.dropBefore(from);
        const ev = new WindowEvaluator(rows.slice(from, to), options);
        expect(tally.rows).toBe(ev.rows);
        expect(tally.countedRows).toBe(ev.countedRows);
        for (let s = 0; s < path.length; s++) {
          const vector = path[s] as Float64Array;
          const evaluation = ev.evaluate(vector);
          const figures = tally.figures(s);
          expect(figures.disagreements).toBe(evaluation.disagreements);
          expect(figures.exitRates).toEqual(evaluation.exitRates);
          expect(figures.savings).toBe(evaluation.savings);
          expect(figures.latencyTotalMs).toBeCloseTo(ev.totals(vector).latencyTotalMs, 9);
          expect(tally.latencyTotalMs(s)).toBe(figures.latencyTotalMs);
        }
        expect(tally.figures('never').latencyTotalMs).toBeCloseTo(ev.totals(ev.neverVector()).latencyTotalMs, 9);
        // The test on the tally chooses what the test on the evaluator chooses.
        const recent = new PathTally(path, options);
        for (let i = Math.max(from, to - 400); i < to; i++) recent.add(i, rows[i] as FeedbackRecord);
        const testOptions = { budget: 0.01, confidence: 0.95, fitRows: 3000, windowRows: 1000 };
        const choice = testPathTally(tally, { ...testOptions, recent });
        expect(choice).toEqual(testPath(path, ev, { ...testOptions, recent: ev.subset((i) => i >= ev.rows - 400) }));
        passed.push(choice.passed);
      }
      // Some tests passed settings beyond all-never, so the choice was not trivially the same.
      expect(Math.max(...passed)).toBeGreaterThan(1);
      tally.keepLast(0);
      expect(tally.rows).toBe(0);
      expect(tally.figures(path.length - 1).exitRates).toEqual(new Map(activeRamps.map((id) => [id, 0])));
    }
  });

  it('takes only paths on which no threshold rises', () => {
    const options: WindowEvalOptions = { activeRamps: [0, 1], rule, profile: syntheticProfile() };
    const inf = Number.POSITIVE_INFINITY;
    expect(() => new PathTally([Float64Array.of(inf, inf), Float64Array.of(0.9, inf)], options)).not.toThrow();
    expect(() => new PathTally([Float64Array.of(0.8, inf), Float64Array.of(0.9, inf)], options)).toThrow(RangeError);
    expect(() => new PathTally([Float64Array.of(Number.NaN, inf)], options)).not.toThrow();
    expect(() => new PathTally([Float64Array.of(inf, inf), Float64Array.of(Number.NaN, inf)], options)).toThrow(
      RangeError,
    );
    expect(() => new PathTally([Float64Array.of(inf)], options)).toThrow(RangeError);
  });
});

describe('the guarded tuner on path tallies chooses what it chose re-deciding the tuning window', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  /**
   * Replays `stream` twice, on tallies and on the reference; every event and every choice
   * (GuardedChoice, all fields) must be the same. Returns the events.
   */
  function replayBoth(
    header: TraceHeader,
    stream: readonly FeedbackRecord[],
    options: Pick<ReplayOptions, 'activeRamps' | 'rampSet'>,
  ): ReturnType<typeof replayTrace>['events'] {
    // choose is protected: watched through the prototype, for every tuner replay builds.
    const choose = vi.spyOn(GuardedTuner.prototype as unknown as { choose: () => unknown }, 'choose');
    const tallied = replayTrace(header, stream, { ...options, kind: 'guarded', hindsight: false });
    const talliedChoices = choose.mock.results.map((r) => r.value as { choice: GuardedChoice } | null);
    choose.mockClear();
    const reference = replayTrace(header, stream, { ...options, kind: 'guarded', hindsight: false, pathTally: false });
    const referenceChoices = choose.mock.results.map((r) => r.value as { choice: GuardedChoice } | null);
    expect(talliedChoices.length).toBeGreaterThan(0);
    expect(talliedChoices.length).toBe(referenceChoices.length);
    talliedChoices.forEach((c, i) => expect(c?.choice, `re-tune ${i}`).toEqual(referenceChoices[i]?.choice));
    expect(tallied.events).toEqual(reference.events);
    expect(tallied.windows).toEqual(reference.windows);
    choose.mockRestore();
    return tallied.events;
  }

  // Past 15 windows older rows learn and the whole tuning window tests (tuner/guarded-tuner.ts):
  // the streams run well past 30 windows, when the history is full and rows leave the tallies.
  const LONG = 600_000;

  it(
    'stationary, resampled to 40 windows, 3 ramps',
    async () => {
      const { header, records } = await readTrace(fixture('fmnist-stationary.jsonl.gz'));
      const events = replayBoth(header, resampleRecords(records, 40_000, 1), { activeRamps: [0, 3, 5] });
      expect(events.filter((e) => e.event.type === 'retune' && e.afterRow > 20_000).length).toBeGreaterThan(50);
    },
    LONG,
  );

  it(
    'shifted after 25 windows: tightenings and ramp-set changes start the tallies afresh',
    async () => {
      const { header, records } = await readTrace(fixture('fmnist-shifted.jsonl.gz'));
      const easy = records.slice(0, records.length / 2);
      const hard = records.slice(records.length / 2);
      const stream = [...resampleRecords(easy, 25_000, 1), ...resampleRecords(hard, 15_000, 101)];
      const fixed = replayBoth(header, stream, { activeRamps: [0, 3, 5] });
      expect(fixed.some((e) => e.event.type === 'tighten' && e.afterRow > 25_000)).toBe(true);
      // Room for a fourth ramp: the tuner keeps trying one, also once the history is full.
      const changing = replayBoth(header, stream, {
        activeRamps: [0, 3, 5],
        rampSet: { maxRamps: 4, rampBudget: 0.3, checkEveryBatches: 30 },
      });
      expect(changing.some((e) => e.event.type === 'ramps' && e.afterRow > 30_000)).toBe(true);
    },
    LONG,
  );

  it(
    'patience policy with 8 ramps, and 1 ramp',
    async () => {
      const { header, records } = await readTrace(fixture('fmnist-stationary.jsonl.gz'));
      const stream = resampleRecords(records, 33_000, 2);
      replayBoth({ ...header, policy: 'patience' }, stream, { activeRamps: [0, 1, 2, 3, 4, 5, 6, 7] });
      replayBoth(header, stream, { activeRamps: [2] });
    },
    LONG,
  );
});
