import { describe, expect, it, vi } from 'vitest';
import { EngineDataPlane } from '../src/data-plane/engine-data-plane.js';
import type { ExitPlan } from '../src/engine/backend.js';
import { LiveTuning, thresholdProblem, withPins } from '../src/engine/live-tuning.js';
import { createMetrics, INACTIVE_THRESHOLD, recordExitsReport } from '../src/metrics.js';
import type { FeedbackRecord } from '../tuner/feedback-record.js';
import { OnlineTuner } from '../tuner/online-tuner.js';
import { RAMPS, syntheticTrace } from './fixtures/synthetic-trace.js';
import { bundledConfig, testImages } from './helpers/bundled.js';
import { neverPlan, PlanHostStub as Host } from './helpers/plan-host.js';

const NEVER_PLAN = neverPlan(RAMPS);

describe('LiveTuning on a synthetic trace', () => {
  const { header, records } = syntheticTrace({ rows: 4000, seed: 51 });
  // The tuner on this thread, so the plan can be checked right after feeding batches.
  const options = {
    profile: header.profile,
    accuracy: { budget: 0.01, confidence: 0.95, window: 1000 },
    thread: false,
  };
  const asRecord = (m: ReadonlyMap<number, number | null> | undefined) => Object.fromEntries(m ?? []);

  it("applies the guarded tuner's thresholds as it re-tunes", () => {
    const host = new Host(NEVER_PLAN);
    const tuning = new LiveTuning(host, { ...options, kind: 'guarded' });
    host.feed(records.slice(0, 2000));
    expect(Object.values(host.thresholds()).some((t) => t !== null)).toBe(true);
    expect(host.thresholds()).toEqual(asRecord(tuning.state().proposed));
  });

  it('while paused keeps the plan but lets the tuner observe; resume applies what it wants at once', () => {
    const host = new Host(NEVER_PLAN);
    const tuning = new LiveTuning(host, { ...options, kind: 'guarded' });
    tuning.pause();
    const before = host.exitPlan;
    host.feed(records.slice(0, 2000));
    const state = tuning.state();
    expect(state.paused).toBe(true);
    expect(state.estimates?.retunes).toBeGreaterThan(0);
    expect(Object.values(asRecord(state.proposed)).some((t) => t !== null)).toBe(true);
    expect(host.exitPlan).toBe(before);
    expect(host.exitPlan.ramps).toEqual(NEVER_PLAN.ramps);
    tuning.resume();
    expect(tuning.state().paused).toBe(false);
    expect(host.thresholds()).toEqual(asRecord(state.proposed));
  });

  it('keeps pinned thresholds whatever the tuner does, until unpinned', () => {
    const host = new Host({ ...NEVER_PLAN, ramps: NEVER_PLAN.ramps.filter((r) => r.id !== 7) });
    const tuning = new LiveTuning(host, { ...options, kind: 'guarded' });
    tuning.pin(
      new Map([
        [2, 0.5],
        [7, null],
      ]),
    );
    expect(host.thresholds()).toMatchObject({ 2: 0.5, 7: null });
    host.feed(records.slice(0, 2000));
    const proposed = asRecord(tuning.state().proposed);
    expect(Object.values(proposed).some((t) => t !== null)).toBe(true);
    // Ramp 7 is not the tuner's: pinning it made its head run; the others follow the tuner.
    expect(host.thresholds()).toEqual({ ...proposed, 2: 0.5, 7: null });
    tuning.pin(new Map([[2, 0.75]]));
    expect(asRecord(tuning.state().pinned)).toEqual({ 2: 0.75, 7: null });
    tuning.unpin();
    expect(host.thresholds()).toEqual(proposed);
  });

  it('in drop mode draws the learning probe share until the tuner settles, the settled share after, and learns again after a tightening', () => {
    const host = new Host({ ...NEVER_PLAN, mode: 'drop', feedbackFraction: 0.1 });
    const tuning = new LiveTuning(host, { ...options, kind: 'guarded', learningFeedbackFraction: 0.5 });
    // Learning from the start: the plan in force draws half the rows as probes.
    expect(host.exitPlan.feedbackFraction).toBe(0.5);
    expect(tuning.state().probeShare).toBe(0.5);
    host.feed(records.slice(0, 1008));
    expect(tuning.state().estimates?.learning).toBe(true);
    expect(host.exitPlan.feedbackFraction).toBe(0.5);
    // Settled (a re-tune chose thresholds, and 3 windows of probes came in): the configured share.
    host.feed(records.slice(1008, 3008));
    expect(tuning.state().estimates?.learning).toBe(false);
    expect(host.exitPlan.feedbackFraction).toBe(0.1);
    expect(tuning.state().probeShare).toBe(0.1);
    // Answers given live that break the budget: the tuner tightens and learns again.
    const bad = records.slice(3008, 3408).map((r) => ({ ...r, exit: r.ramps[0]!.argmax !== r.final?.argmax ? 0 : -1 }));
    host.feed(bad);
    expect(tuning.state().estimates?.tightenings).toBeGreaterThan(0);
    expect(host.exitPlan.feedbackFraction).toBe(0.5);
  });

  it('in release mode draws every row as a probe while the tuner is not idle, whatever the learning share', () => {
    const host = new Host(NEVER_PLAN);
    const tuning = new LiveTuning(host, { ...options, kind: 'guarded', learningFeedbackFraction: 0.5 });
    host.feed(records.slice(0, 480));
    expect(tuning.state().estimates?.feedbackDemand).toBe('learning');
    expect(host.exitPlan.feedbackFraction).toBe(1);
    expect(tuning.state().probeShare).toBe(1);
  });

  it('feeds the tuner only probe rows (absent counts as a probe), and nothing for a batch without one', () => {
    const host = new Host(NEVER_PLAN);
    new LiveTuning(host, { ...options, kind: 'guarded' });
    const observe = vi.spyOn(OnlineTuner.prototype, 'observe');
    try {
      const [a, b, c, d] = records.slice(0, 4) as [FeedbackRecord, FeedbackRecord, FeedbackRecord, FeedbackRecord];
      const probe = { ...a, probe: true };
      const legacy = { ...b };
      delete legacy.probe;
      const exited = { ...c, probe: false, final: null };
      const reachedEnd = { ...d, probe: false };
      host.onFeedback?.([probe, exited, legacy, reachedEnd]);
      expect(observe).toHaveBeenCalledTimes(1);
      expect(observe.mock.calls[0]?.[0]).toEqual([probe, legacy]);
      host.onFeedback?.([exited, reachedEnd]);
      expect(observe).toHaveBeenCalledTimes(1);
    } finally {
      observe.mockRestore();
    }
  });

  it("without an online tuner: pause is a no-op, pins apply, a reload's plan keeps them unless the policy cannot take them", () => {
    const host = new Host({ ...NEVER_PLAN, ramps: [{ id: 3, threshold: 0.9 }] });
    const tuning = new LiveTuning(host, { ...options, kind: 'static' });
    expect(host.onFeedback).toBeUndefined();
    tuning.pause();
    expect(tuning.state()).toMatchObject({
      kind: 'static',
      online: false,
      paused: false,
      proposed: undefined,
      estimates: undefined,
    });
    tuning.pin(new Map([[0, 0]]));
    expect(host.thresholds()).toEqual({ 0: 0, 3: 0.9 });
    expect(tuning.setStaticPlan({ ...NEVER_PLAN, ramps: [{ id: 3, threshold: 0.8 }] })).toEqual([]);
    expect(host.thresholds()).toEqual({ 0: 0, 3: 0.8 });
    tuning.pin(new Map([[1, 0.5]]));
    // Entropy scores are ≤ 0: a pin at 0.5 could never fire; one at 0 (the most certain) can.
    expect(tuning.setStaticPlan({ ...NEVER_PLAN, policy: 'entropy', ramps: [] })).toEqual([1]);
    expect(host.thresholds()).toEqual({ 0: 0 });
  });

  it("checks thresholds against the policy's score range and merges pins into a plan in model order", () => {
    expect(thresholdProblem('confidence', 0.5)).toBeUndefined();
    expect(thresholdProblem('confidence', null)).toBeUndefined();
    expect(thresholdProblem('margin', 1.01)).toMatch(/out of range for the margin policy/);
    expect(thresholdProblem('patience', -0.1)).toMatch(/out of range/);
    expect(thresholdProblem('entropy', -2)).toBeUndefined();
    expect(thresholdProblem('entropy', 0.1)).toMatch(/entropy/);
    expect(thresholdProblem('confidence', Number.NaN)).toMatch(/finite/);
    const plan: ExitPlan = {
      ...NEVER_PLAN,
      ramps: [
        { id: 1, threshold: 0.9 },
        { id: 5, threshold: null },
      ],
    };
    expect(withPins(plan, new Map())).toBe(plan);
    expect(
      withPins(
        plan,
        new Map([
          [5, 0.7],
          [0, null],
        ]),
      ).ramps,
    ).toEqual([
      { id: 0, threshold: null },
      { id: 1, threshold: 0.9 },
      { id: 5, threshold: 0.7 },
    ]);
  });
});

describe('live tuning on the bundled model', () => {
  it('with tuner.start never, starts with every ramp at "never" and opens exits from live feedback within a few windows', async () => {
    const config = bundledConfig(
      'live-tuning.test.yaml',
      [
        'accuracy: { budget: 0.02, window: 250 }',
        'tuner: { kind: guarded, start: never }',
        'batching: { max_batch_size: 16, max_queue_delay_ms: 2, max_queue_size: 4096 }',
        'slo: { latency_ms: 60000 }',
      ],
      'workers: 1, intra_op_threads: 1',
    );
    const plane = await EngineDataPlane.load(config, { version: 'test' });
    try {
      const before = plane.exits('fmnist');
      expect(before.ramps.filter((r) => r.active).every((r) => r.threshold === null)).toBe(true);
      const rows = 2400;
      const images = await testImages(rows);
      const exitsSeen: number[] = [];
      const inFlight = 32;
      let next = 0;
      await Promise.all(
        Array.from({ length: inFlight }, async () => {
          while (next < rows) {
            const i = next++;
            const data = Array.from((images.data as Float32Array).subarray(i * 784, (i + 1) * 784));
            const answer = await plane.infer({
              modelName: 'fmnist',
              parameters: {},
              inputs: [{ name: 'pixels', datatype: 'FP32', shape: [1, 1, 28, 28], data }],
            });
            if (answer.parameters['early'] === true) exitsSeen.push(i);
          }
        }),
      );
      const after = plane.exits('fmnist');
      expect(after.ramps.some((r) => r.active && r.threshold !== null)).toBe(true);
      expect(exitsSeen.length).toBeGreaterThan(0);
      // Exits began within the first few windows of 250 requests, not only at the very end.
      expect(Math.min(...exitsSeen)).toBeLessThan(1500);

      // What the tuner did shows in the exits report and in the metrics.
      expect(after.tuner).toMatchObject({ kind: 'guarded', online: true, paused: false, pinned: {} });
      const estimates = after.tuner.estimates!;
      expect(estimates.retunes).toBeGreaterThan(0);
      expect(estimates.estimatedSavings).toBeGreaterThan(0);
      expect(estimates.upperBound).not.toBeNull();
      expect(estimates.hindsightSavings).not.toBeNull();
      // The tuner's own estimate (from its last re-tune), not the server's last window: the tuner
      // runs in its own thread and, on a busy machine, its latest change may still be on the way
      // (the window then holds rows served at "never", whose heads cost without exits).
      expect(Number.isFinite(after.window.estimatedSavings)).toBe(true);
      const metrics = createMetrics({ processMetrics: false });
      try {
        recordExitsReport(metrics, after);
        const text = await metrics.registry.metrics();
        const open = after.ramps.filter((r) => r.active && r.threshold !== null);
        for (const r of open) {
          expect(text).toContain(`offramp_ramp_active{model="fmnist",ramp="${r.id}"} 1`);
          expect(text).toContain(`offramp_ramp_threshold{model="fmnist",ramp="${r.id}"} ${r.threshold}`);
        }
        expect(open.some((r) => r.threshold !== INACTIVE_THRESHOLD)).toBe(true);
        const savings = /^offramp_tuner_expected_latency_savings_ratio\{model="fmnist"\} (\S+)$/m.exec(text);
        expect(Number(savings?.[1])).toBeGreaterThan(0);
        expect(text).toMatch(/^offramp_estimated_latency_savings_ratio\{model="fmnist"\} \S+$/m);
        expect(text).toMatch(/^offramp_hindsight_latency_savings_ratio\{model="fmnist"\} \S+$/m);
        expect(text).toContain(`offramp_tuner_retunes_total{model="fmnist"} ${estimates.retunes}`);
      } finally {
        metrics.close();
      }
    } finally {
      await plane.close();
    }
  });

  it('by default serves the calibrated start from the first request, and reports the learning probe share in drop mode', async () => {
    const config = bundledConfig(
      'live-tuning.test.yaml',
      ['exits: { mode: drop, drop_feedback_fraction: 0.1, learning_feedback_fraction: 0.6 }'],
      'workers: 1, intra_op_threads: 1',
    );
    const plane = await EngineDataPlane.load(config, { version: 'test' });
    try {
      const report = plane.exits('fmnist');
      const active = report.ramps.filter((r) => r.active);
      expect(active.length).toBeGreaterThan(0);
      expect(active.every((r) => r.threshold !== null)).toBe(true);
      expect(report.tuner.probeShare).toBe(0.6);
      expect(report.tuner.estimates?.learning).toBe(true);
      const metrics = createMetrics({ processMetrics: false });
      try {
        recordExitsReport(metrics, report);
        expect(await metrics.registry.metrics()).toContain('offramp_probe_share_ratio{model="fmnist"} 0.6');
      } finally {
        metrics.close();
      }
    } finally {
      await plane.close();
    }
  });
});

describe('LiveTuning with disabled ramps', () => {
  const { header, records } = syntheticTrace({ rows: 4000, seed: 52 });
  const options = {
    profile: header.profile,
    accuracy: { budget: 0.01, confidence: 0.95, window: 1000 },
    thread: false,
  };
  /** A Host that remembers every ramp any plan it was given named. */
  class RecordingHost extends Host {
    readonly named = new Set<number>();
    override setExitPlan(plan: ExitPlan): void {
      for (const r of plan.ramps) this.named.add(r.id);
      super.setExitPlan(plan);
    }
  }

  it('no plan names a ramp disabled at load or later: the tuner withdraws it, a pin on it is dropped', () => {
    const [atLoad, later] = [RAMPS[1] as number, RAMPS[4] as number];
    const host = new RecordingHost(NEVER_PLAN);
    const log: string[] = [];
    const tuning = new LiveTuning(
      host,
      {
        ...options,
        kind: 'guarded',
        disabledRamps: new Map([[atLoad, 'head file heads/head-1.onnx is missing']]),
        rampSet: { availableRamps: RAMPS, maxRamps: 8, rampBudget: 1, checkEveryBatches: 5 },
      },
      (line) => log.push(line),
    );
    expect(log).toEqual([
      `ramp ${atLoad} disabled: head file heads/head-1.onnx is missing; the model serves without it`,
    ]);
    expect(host.exitPlan.ramps.map((r) => r.id)).not.toContain(atLoad);
    expect(tuning.tuner?.activeRamps).not.toContain(atLoad);
    host.feed(records.slice(0, 2000));
    expect(host.exitPlan.ramps.map((r) => r.id)).toContain(later);

    tuning.pin(new Map([[later, 0.5]]));
    tuning.onExecutorFaults([{ kind: 'ramp-disabled', ramp: later, reason: 'its head failed on a batch of 8 row(s)' }]);
    // Reported again by another worker: logged once.
    tuning.onExecutorFaults([{ kind: 'ramp-disabled', ramp: later, reason: 'its head failed on a batch of 4 row(s)' }]);
    expect(log.filter((l) => l.startsWith(`ramp ${later} disabled`))).toHaveLength(1);
    expect(log).toContain(`ramp ${later} unpinned: it is disabled`);
    expect(tuning.state().pinned.has(later)).toBe(false);
    expect(tuning.tuner?.activeRamps).not.toContain(later);
    expect(host.exitPlan.ramps.map((r) => r.id)).not.toContain(later);
    expect([...tuning.disabledRamps.keys()]).toEqual([atLoad, later]);

    host.named.clear();
    host.feed(records.slice(2000));
    expect(host.named.has(atLoad) || host.named.has(later)).toBe(false);
  });

  it('a static plan (or a reload) naming a disabled ramp runs without it', () => {
    const host = new RecordingHost(NEVER_PLAN);
    const disabled = RAMPS[2] as number;
    const tuning = new LiveTuning(host, {
      ...options,
      kind: 'static',
      disabledRamps: new Map([[disabled, 'head file heads/head-2.onnx is not a valid ONNX model (x)']]),
    });
    tuning.setStaticPlan(NEVER_PLAN);
    tuning.pin(new Map([[disabled, 0.9]]));
    expect(host.named.has(disabled)).toBe(false);
    expect(host.exitPlan.ramps).toHaveLength(RAMPS.length - 1);
  });
});
