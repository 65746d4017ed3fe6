// The exit plan a model starts serving with, on the bundled model's prepared manifest: which
// ramps, and where their thresholds start for each tuner kind and `tuner.start`.
import { describe, expect, it } from 'vitest';
import { parseServingConfig } from '../src/config/index.js';
import { staticPlan } from '../src/engine/exit-plan.js';
import { readManifest } from '../src/model/manifest.js';
import { calibratedStartRate, calibratedThresholds } from '../tuner/calibration.js';
import { BUNDLED_DIR } from './helpers/bundled.js';

function modelConfig(lines: string[]) {
  const config = parseServingConfig(
    ['models:', '  - name: fmnist', `    path: ${JSON.stringify(BUNDLED_DIR)}`, ...lines].join('\n'),
    'exit-plan.test.yaml',
  );
  return config.models[0]!;
}

describe('the starting exit plan', () => {
  it('guarded starts calibrated by default: the static ramps, each stricter than static at the window-safe rate', async () => {
    const manifest = await readManifest(BUNDLED_DIR);
    const guarded = staticPlan(manifest, modelConfig(['    tuner: { kind: guarded }']));
    const fixed = staticPlan(manifest, modelConfig(['    tuner: { kind: static }']));
    expect(guarded.ramps.map((r) => r.id)).toEqual(fixed.ramps.map((r) => r.id));
    expect(guarded.ramps.length).toBeGreaterThan(0);
    const rate = calibratedStartRate({ budget: 0.01, confidence: 0.95, window: 1000 });
    const chosen = manifest.ramps.filter((r) => guarded.ramps.some((g) => g.id === r.id));
    const expected = calibratedThresholds(chosen, rate, 'confidence');
    for (const [i, r] of guarded.ramps.entries()) {
      expect(r.threshold).toBe(expected.get(r.id));
      expect(r.threshold!).toBeGreaterThanOrEqual(fixed.ramps[i]!.threshold!);
    }
    expect(guarded.ramps.some((r, i) => r.threshold! > fixed.ramps[i]!.threshold!)).toBe(true);
  });

  it('guarded with start never, and apparate, start every ramp at "never"; off runs no ramp', async () => {
    const manifest = await readManifest(BUNDLED_DIR);
    for (const tuner of ['{ kind: guarded, start: never }', '{ kind: apparate }']) {
      const plan = staticPlan(manifest, modelConfig([`    tuner: ${tuner}`]));
      expect(plan.ramps.length).toBeGreaterThan(0);
      expect(plan.ramps.every((r) => r.threshold === null)).toBe(true);
    }
    expect(staticPlan(manifest, modelConfig(['    tuner: { kind: off }'])).ramps).toEqual([]);
  });

  it('the entropy policy, which the solo curves do not calibrate, starts at "never" under guarded', async () => {
    const manifest = await readManifest(BUNDLED_DIR);
    const plan = staticPlan(manifest, modelConfig(['    exits: { policy: entropy }']));
    expect(plan.ramps.every((r) => r.threshold === null)).toBe(true);
  });

  it('drop mode starts with the settled share in the plan (LiveTuning raises it while the tuner learns)', async () => {
    const manifest = await readManifest(BUNDLED_DIR);
    const plan = staticPlan(manifest, modelConfig(['    exits: { mode: drop, drop_feedback_fraction: 0.2 }']));
    expect(plan.feedbackFraction).toBe(0.2);
  });
});
