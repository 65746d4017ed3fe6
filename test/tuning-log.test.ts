// The tuning event log (src/engine/tuning-log.ts) and what LiveTuning records in it: the online
// tuner's events as they arrive, and the operator's pauses, pins and the ramps disabled.
import { describe, expect, it, vi } from 'vitest';
import { LiveTuning } from '../src/engine/live-tuning.js';
import { describeThresholds, TuningLog, tunerEventEntry } from '../src/engine/tuning-log.js';
import { OnlineTuner } from '../tuner/online-tuner.js';
import type { TunerEvent } from '../tuner/tuner.js';
import { RAMPS, syntheticTrace } from './fixtures/synthetic-trace.js';
import { neverPlan, PlanHostStub as Host } from './helpers/plan-host.js';

describe('TuningLog', () => {
  it('numbers events from 1, keeps the last `capacity`, and answers what came after a number', () => {
    let clock = 1000;
    const log = new TuningLog(3, () => clock++);
    expect(log.since(0)).toEqual({ events: [], last: 0 });
    for (const kind of ['pause', 'resume', 'pin', 'unpin'] as const) log.record(kind, kind);
    // Four recorded, three kept: a reader at 0 gets the three still there.
    expect(log.since(0)).toEqual({
      events: [
        { at: 1001, kind: 'resume', summary: 'resume' },
        { at: 1002, kind: 'pin', summary: 'pin' },
        { at: 1003, kind: 'unpin', summary: 'unpin' },
      ],
      last: 4,
    });
    expect(log.since(3).events.map((e) => e.kind)).toEqual(['unpin']);
    expect(log.since(4)).toEqual({ events: [], last: 4 });
    expect(log.since(99)).toEqual({ events: [], last: 4 });
    expect(log.since(Number.NaN).events).toHaveLength(3);
    expect(() => new TuningLog(0)).toThrow(RangeError);
  });

  it('summarises the tuner’s events in one line each', () => {
    expect(describeThresholds(new Map())).toBe('no ramps');
    expect(
      tunerEventEntry({
        type: 'retune',
        reason: 'periodic',
        thresholds: new Map([
          [3, null],
          [0, 0.91234],
        ]),
        estimatedSavings: 0.2346,
      }),
    ).toEqual({ kind: 'retune', summary: 'retune (periodic): 0 → 0.912, 3 → never; estimated savings 23.5 %' });
    expect(tunerEventEntry({ type: 'tighten', reason: 'at-risk', disagreement: 14 / 900, rows: 900 })).toEqual({
      kind: 'tighten',
      summary: 'tighten (at-risk): 14 of 900 rows disagreed (1.56 %); every ramp back to "never" until the window ends',
    });
    expect(tunerEventEntry({ type: 'ramps', dropped: [2], added: 5, reasons: ['ramp 2 saves nothing'] })).toEqual({
      kind: 'ramps',
      summary: 'ramps: dropped 2; added 5 (ramp 2 saves nothing)',
    });
  });
});

const NEVER_PLAN = neverPlan(RAMPS);

describe('LiveTuning’s event log', () => {
  const { header, records } = syntheticTrace({ rows: 4000, seed: 51 });
  // The tuner on this thread, so its events are in the log right after the batches are fed.
  const options = {
    profile: header.profile,
    accuracy: { budget: 0.01, confidence: 0.95, window: 1000 },
    thread: false,
  };

  it('records the tuner’s re-tunes that change thresholds and its tightenings, marked while paused', () => {
    const host = new Host(NEVER_PLAN);
    const tuning = new LiveTuning(host, { ...options, kind: 'guarded' });
    host.feed(records.slice(0, 2000));
    const retunes = tuning.eventsSince(0).events;
    expect(retunes.length).toBeGreaterThan(0);
    expect(retunes.every((e) => e.kind === 'retune')).toBe(true);
    expect(retunes[0]!.summary).toMatch(/^retune \(periodic\): 0 → (never|[\d.]+), 1 → /);

    const seen = tuning.eventsSince(0).last;
    tuning.pause();
    // Answers given live that break the budget: the tuner tightens (while paused: not applied).
    const bad = records.slice(2000, 2400).map((r) => ({ ...r, exit: r.ramps[0]!.argmax !== r.final?.argmax ? 0 : -1 }));
    host.feed(bad);
    const after = tuning.eventsSince(seen);
    expect(after.events[0]).toMatchObject({ kind: 'pause' });
    const tighten = after.events.find((e) => e.kind === 'tighten');
    expect(tighten?.summary).toMatch(
      /^tighten \((violation|drift|at-risk)\): \d+ of \d+ rows disagreed \([\d.]+ %\); every ramp back to "never".* \(paused: not applied\)$/,
    );
    expect(tighten!.at).toBeGreaterThan(Date.now() - 60_000);
  });

  it('leaves out a re-tune that repeats the thresholds the tuner had', () => {
    const host = new Host(NEVER_PLAN);
    const tuning = new LiveTuning(host, { ...options, kind: 'guarded' });
    const retune = (reason: 'periodic' | 'window-end', threshold: number | null): TunerEvent => ({
      type: 'retune',
      reason,
      thresholds: new Map(RAMPS.map((id) => [id, id === 0 ? threshold : null])),
      estimatedSavings: 0.1,
    });
    const observe = vi
      .spyOn(OnlineTuner.prototype, 'observe')
      .mockReturnValueOnce([retune('periodic', null)]) // the start's thresholds again
      .mockReturnValueOnce([retune('periodic', 0.9), retune('window-end', 0.9)])
      .mockReturnValueOnce([retune('periodic', 0.8)]);
    try {
      host.feed(records.slice(0, 48));
    } finally {
      observe.mockRestore();
    }
    expect(tuning.eventsSince(0).events.map((e) => e.summary.replace(/, 1 → .*/, ''))).toEqual([
      'retune (periodic): 0 → 0.9',
      'retune (periodic): 0 → 0.8',
    ]);
  });

  it('records pins, unpins, a reload dropping pins and disabled ramps', () => {
    const host = new Host({ ...NEVER_PLAN, ramps: [{ id: 3, threshold: 0.9 }] });
    const tuning = new LiveTuning(host, {
      ...options,
      kind: 'static',
      disabledRamps: new Map([[7, 'head file heads/head-7.onnx is missing']]),
    });
    tuning.pause(); // no online tuner: nothing to pause, nothing logged
    tuning.unpin();
    tuning.pin(new Map([[1, 0.5]]));
    tuning.setStaticPlan({ ...NEVER_PLAN, policy: 'entropy', ramps: [] });
    tuning.pin(new Map([[2, -0.1]]));
    tuning.disableRamp(2, 'its head failed on a batch of 4 row(s)');
    expect(tuning.eventsSince(0).events.map((e) => [e.kind, e.summary])).toEqual([
      ['ramp-disabled', 'ramp 7 disabled: head file heads/head-7.onnx is missing; the model serves without it'],
      ['unpin', 'unpin: nothing was pinned'],
      ['pin', 'pin: 1 → 0.5'],
      ['unpin', 'unpin: 1 (the reloaded entropy policy cannot take them)'],
      ['pin', 'pin: 2 → -0.1'],
      [
        'ramp-disabled',
        'ramp 2 disabled: its head failed on a batch of 4 row(s); the model serves without it; its pin is dropped',
      ],
    ]);
  });
});
