// What-if (tuner/what-if.ts): the thresholds a tuner would choose at another budget on a window
// of feedback. Checked against the tuners themselves on the bundled model's recorded trace, then
// through a served model (EngineDataPlane.whatIf) with its coded errors.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readTrace } from '../src/cli/replay-command.js';
import { EngineDataPlane } from '../src/data-plane/engine-data-plane.js';
import { OfframpError } from '../src/errors.js';
import { ApparateTuner } from '../tuner/apparate-tuner.js';
import type { ExitRule } from '../tuner/exit-policy.js';
import type { FeedbackRecord } from '../tuner/feedback-record.js';
import { GuardedTuner } from '../tuner/guarded-tuner.js';
import type { TraceHeader } from '../tuner/replay.js';
import type { TunerEvent } from '../tuner/tuner.js';
import { whatIf, whatIfRows, type WhatIfOptions } from '../tuner/what-if.js';
import { parseServingConfig } from '../src/config/index.js';
import { BUNDLED_DIR, TEST_SERVER, testImages } from './helpers/bundled.js';

const TRACE = fileURLToPath(new URL('./fixtures/traces/fmnist-stationary.jsonl.gz', import.meta.url));
const RULE: ExitRule = { policy: 'confidence', patience: 2 };
/** The three ramps the bundled model serves with by default (its static plan). */
const ACTIVE = [0, 1, 2];
const BATCH = 16;

type Retune = Extract<TunerEvent, { type: 'retune' }>;

describe('whatIf against the tuners, on the bundled model’s recorded trace', () => {
  let header: TraceHeader;
  let records: FeedbackRecord[];
  beforeAll(async () => {
    ({ header, records } = await readTrace(TRACE));
  });
  const options = (budget: number, kind: WhatIfOptions['kind'] = 'guarded'): WhatIfOptions => ({
    kind,
    activeRamps: ACTIVE,
    rule: RULE,
    profile: header.profile,
    budget,
    confidence: 0.95,
    window: 1000,
    current: new Map(),
  });

  it('at the guarded tuner’s budget, on the rows of its last re-tune, chooses what the tuner chose', () => {
    // 3,000 rows: well short of the tuner's tuning window (10 windows), so it re-tunes with its
    // short-history search (one row in three learns) on every row it has observed — the search
    // the what-if runs. (Past 5 windows of older rows it learns on those instead, which a
    // served feedback window does not hold.) Every row was answered at the final layer, so
    // nothing breaks the budget and the history is never cleared.
    const tuner = new GuardedTuner({
      kind: 'guarded',
      rule: RULE,
      profile: header.profile,
      budget: 0.01,
      confidence: 0.95,
      window: 1000,
      activeRamps: ACTIVE,
    });
    let last: { event: Retune; rows: number } | undefined;
    const fed = records.slice(0, 3000);
    for (let i = 0; i < fed.length; i += BATCH) {
      for (const event of tuner.observe(fed.slice(i, i + BATCH)))
        if (event.type === 'retune' && event.reason !== 'idle') last = { event, rows: i + BATCH };
    }
    expect(tuner.estimates.tightenings).toBe(0);
    expect(last).toBeDefined();
    const { event, rows } = last!;
    expect([...event.thresholds.values()].some((t) => t !== null)).toBe(true);
    const result = whatIf(fed.slice(0, rows), { ...options(0.01), current: tuner.thresholds });
    expect(result.rows).toBe(rows);
    expect(result.chosen.thresholds).toEqual(event.thresholds);
    // With the chosen thresholds in force, both columns judge one setting on the same rows.
    const same = whatIf(fed.slice(0, rows), { ...options(0.01), current: event.thresholds });
    const { upperBound, ...chosen } = same.chosen;
    expect(upperBound).not.toBeNull();
    expect(same.current).toEqual(chosen);
  });

  it('at the Apparate tuner’s budget, on its last four batches, climbs to what the tuner chose', () => {
    const tuner = new ApparateTuner({
      kind: 'apparate',
      rule: RULE,
      profile: header.profile,
      budget: 0.02,
      confidence: 0.95,
      window: 1000,
      activeRamps: ACTIVE,
    });
    let last: { event: Retune; from: number; to: number } | undefined;
    const fed = records.slice(0, 2000);
    for (let i = 0; i < fed.length; i += BATCH) {
      for (const event of tuner.observe(fed.slice(i, i + BATCH)))
        if (event.type === 'retune') last = { event, from: Math.max(0, i - 3 * BATCH), to: i + BATCH };
    }
    expect(last).toBeDefined();
    const result = whatIf(fed.slice(last!.from, last!.to), options(0.02, 'apparate'));
    expect(result.rows).toBe(4 * BATCH);
    expect(result.chosen.thresholds).toEqual(last!.event.thresholds);
    expect(result.chosen.upperBound).toBeNull();
  });

  it('answers at least as many rows early, and saves at least as much, at a looser budget', () => {
    const window = records.slice(1000, 2000);
    for (const kind of ['guarded', 'apparate', 'static'] as const) {
      const results = [0.005, 0.01, 0.02, 0.05, 0.1].map((budget) => whatIf(window, options(budget, kind)));
      for (let k = 1; k < results.length; k++) {
        expect(results[k]!.chosen.earlyShare, kind).toBeGreaterThanOrEqual(results[k - 1]!.chosen.earlyShare);
        expect(results[k]!.chosen.savings, kind).toBeGreaterThanOrEqual(results[k - 1]!.chosen.savings - 1e-12);
      }
      expect(results.at(-1)!.chosen.earlyShare, kind).toBeGreaterThan(0.5);
    }
  });

  it('is deterministic and judges the thresholds in force on the same rows', () => {
    const window = records.slice(0, 1000);
    const current = new Map<number, number | null>([
      [0, 0.99],
      [1, null],
    ]);
    const a = whatIf(window, { ...options(0.02), current });
    const b = whatIf(window, { ...options(0.02), current });
    expect(a).toEqual(b);
    // Ramp 2 has no threshold in force: "never".
    expect(a.current.thresholds).toEqual(new Map([...current, [2, null]]));
    const exitAtZero = window.filter((r) => (r.ramps.find((x) => x.id === 0)?.score ?? 0) >= 0.99).length;
    expect(a.current.earlyShare).toBeCloseTo(exitAtZero / window.length, 12);
  });

  it('judges only probes that carry every active ramp’s reading', () => {
    const window = records.slice(0, 300).map((r, i): FeedbackRecord => {
      if (i % 3 === 1) return { ...r, probe: false };
      if (i % 3 === 2) return { ...r, ramps: r.ramps.filter((x) => x.id !== 2) };
      return r;
    });
    expect(whatIfRows(window, ACTIVE)).toHaveLength(100);
    expect(whatIf(window, options(0.05)).rows).toBe(100);
    // Without ramp 2 active, rows lacking its reading count again.
    expect(whatIf(window, { ...options(0.05), activeRamps: [0, 1] }).rows).toBe(200);
    const none = whatIf([], options(0.05));
    expect(none.rows).toBe(0);
    expect(none.chosen.thresholds).toEqual(new Map(ACTIVE.map((id) => [id, null])));
    expect(none.chosen.upperBound).toBeNull();
    // No ramps (tuner off): nothing to choose, nothing answered early.
    const off = whatIf(window, { ...options(0.05, 'off'), activeRamps: [] });
    expect(off.rows).toBe(200);
    expect(off.chosen.thresholds.size).toBe(0);
    expect(off.chosen.earlyShare).toBe(0);
  });
});

describe('EngineDataPlane.whatIf and the tuning event log on the bundled model', () => {
  let plane: EngineDataPlane;
  beforeAll(async () => {
    const model = (name: string, lines: string[]): string[] => [
      `  - name: ${name}`,
      `    path: ${JSON.stringify(BUNDLED_DIR)}`,
      '    accuracy: { budget: 0.02, window: 250 }',
      '    batching: { max_batch_size: 16, max_queue_delay_ms: 2 }',
      '    slo: { latency_ms: 60000 }',
      ...lines.map((line) => `    ${line}`),
    ];
    const config = parseServingConfig(
      [
        `server: { ${TEST_SERVER} }`,
        'models:',
        ...model('fmnist', ['exits: { mode: release }']),
        // Drop mode, static: what the error says when only probes count.
        ...model('fmnist-drop', ['tuner: { kind: static }', 'exits: { mode: drop, drop_feedback_fraction: 0.1 }']),
      ].join('\n'),
      'what-if.test.yaml',
    );
    plane = await EngineDataPlane.load(config, { version: 'test' });
  }, 60_000);
  afterAll(async () => {
    await plane?.close();
  });

  const codeOf = (f: () => unknown): string | undefined => {
    try {
      f();
    } catch (err) {
      return err instanceof OfframpError ? `${err.code} ${err.httpStatus}` : String(err);
    }
    return undefined;
  };

  it('refuses unknown models, budgets outside (0, 0.5] and an empty window with coded errors', () => {
    expect(codeOf(() => plane.whatIf('nope', undefined, 0.01))).toBe('OFFRAMP_MODEL_NOT_FOUND 404');
    expect(codeOf(() => plane.whatIf('fmnist', '9', 0.01))).toBe('OFFRAMP_MODEL_VERSION_NOT_FOUND 404');
    for (const budget of [0, -0.1, 0.51, Number.NaN, Number.POSITIVE_INFINITY, '0.1' as unknown as number])
      expect(
        codeOf(() => plane.whatIf('fmnist', undefined, budget)),
        String(budget),
      ).toBe('OFFRAMP_INVALID_WHAT_IF_BUDGET 400');
    expect(codeOf(() => plane.whatIf('fmnist', undefined, 0.5))).toBe('OFFRAMP_WHAT_IF_NO_FEEDBACK 409');
    expect(() => plane.whatIf('fmnist', undefined, 0.02)).toThrow(/send it traffic; every answered row counts/);
    expect(() => plane.whatIf('fmnist-drop', undefined, 0.02)).toThrow(/in drop mode only probes count/);
  });

  it('answers from the feedback window, keyed by exit id, with the thresholds in force beside', async () => {
    const images = await testImages(320);
    for (let i = 0; i < 320; i += BATCH) {
      const data = Array.from((images.data as Float32Array).subarray(i * 784, (i + BATCH) * 784));
      await plane.infer({
        modelName: 'fmnist',
        parameters: {},
        inputs: [{ name: 'pixels', datatype: 'FP32', shape: [BATCH, 1, 28, 28], data }],
      });
    }
    const exits = plane.exits('fmnist');
    const inForce = Object.fromEntries(exits.ramps.filter((r) => r.active).map((r) => [String(r.id), r.threshold]));
    const tight = plane.whatIf('fmnist', exits.version, 0.005);
    const loose = plane.whatIf('fmnist', undefined, 0.2);
    expect(tight.model).toBe('fmnist');
    expect(loose.budget).toBe(0.2);
    // The window holds the last 250 rows (in release mode each one a probe, unless the tuner is
    // idle; and rows from before a ramp-set change lack the new ramp's reading).
    expect(tight.rows).toBeGreaterThan(0);
    expect(tight.rows).toBeLessThanOrEqual(250);
    expect(loose.rows).toBe(tight.rows);
    expect(Object.keys(loose.thresholds).sort()).toEqual(Object.keys(inForce).sort());
    expect(loose.current.thresholds).toEqual(inForce);
    expect(loose.earlyShare).toBeGreaterThanOrEqual(tight.earlyShare);
    expect(loose.earlyShare).toBeGreaterThan(0);
    expect(loose.predictedSavings).toBeGreaterThan(0);
    expect(loose.upperBound).not.toBeNull();
    expect(loose.current).toEqual(tight.current);
  });

  it('logs pause, resume, pin and unpin through the admin plane, in order, with summaries', () => {
    const before = plane.tuningEvents('fmnist', undefined, 0).last;
    plane.pauseTuner('fmnist');
    plane.pauseTuner('fmnist'); // already paused: nothing new
    plane.pinThresholds(
      'fmnist',
      undefined,
      new Map([
        [1, 0.95],
        [2, null],
      ]),
    );
    plane.unpinThresholds('fmnist');
    plane.resumeTuner('fmnist');
    const log = plane.tuningEvents('fmnist', undefined, before);
    expect(log.last).toBe(before + 4);
    expect(log.events.map((e) => e.kind)).toEqual(['pause', 'pin', 'unpin', 'resume']);
    expect(log.events.map((e) => e.summary)).toEqual([
      'paused: the tuner keeps observing; its changes wait for resume',
      'pin: 1 → 0.95, 2 → never',
      "unpin: 1, 2 back to the tuner's thresholds",
      expect.stringMatching(/^resumed: the tuner's thresholds apply \(\d+ → /),
    ]);
    const now = Date.now();
    for (const e of log.events) expect(e.at).toBeGreaterThan(now - 60_000);
    expect(plane.tuningEvents('fmnist', undefined, log.last)).toEqual({ events: [], last: log.last });
    expect(() => plane.tuningEvents('nope', undefined, 0)).toThrow(OfframpError);
  });
});
