// The feedback window's statistics: what /exits and /metrics report as window disagreement.
import { describe, expect, it } from 'vitest';
import { FeedbackWindow } from '../src/engine/feedback.js';
import type { FeedbackRecord } from '../tuner/feedback-record.js';

function row(exit: number, rampArgmax: number, final: number | null, probe: boolean | undefined): FeedbackRecord {
  return {
    t: 0,
    batchSize: 4,
    exit,
    ramps: [{ id: 0, argmax: rampArgmax, confidence: 0.9, score: 0.9 }],
    final: final === null ? null : { argmax: final, confidence: 0.9 },
    ...(probe === undefined ? {} : { probe }),
  };
}

describe('FeedbackWindow.stats', () => {
  it('judges disagreement on probe rows only (drop mode keeps finals of non-probes only when no ramp took them)', () => {
    const w = new FeedbackWindow(10);
    w.add(row(0, 1, 2, true)); // probe, exited, disagrees
    w.add(row(-1, 3, 3, true)); // probe, ran to the end
    w.add(row(-1, 5, 5, false)); // not a probe, no ramp took it: would count as agreeing
    w.add(row(-1, 6, 6, false));
    w.add(row(0, 7, null, false)); // not a probe, exited: left the batch
    const stats = w.stats();
    expect(stats.disagreement).toBe(0.5);
    expect(stats.perRamp.get(0)).toEqual({ exits: 2, readings: 5, agreeing: 1, compared: 2 });
    expect(stats.earlyFraction).toBeCloseTo(2 / 5);
  });

  it('counts records without the probe field (older traces) as probes', () => {
    const w = new FeedbackWindow(4);
    w.add(row(0, 1, 2, undefined));
    w.add(row(-1, 1, 1, undefined));
    expect(w.stats().disagreement).toBe(0.5);
  });
});
