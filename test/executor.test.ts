import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readManifest, type PreparedManifest } from '../src/model/manifest.js';
import { OnnxSession } from '../src/model/onnx-session.js';
import { BackboneRunner } from '../src/engine/executor/backbone-runner.js';
import { WorkerPool } from '../src/engine/executor/worker-pool.js';
import type { ExitPlan, RowExit } from '../src/engine/backend.js';
import { batchFeedback } from '../src/engine/feedback.js';
import { softmaxRows } from '../src/model/numeric.js';
import { BUNDLED_DIR, BUNDLED_ONNX, testImages } from './helpers/bundled.js';
import { exitPlan } from './helpers/exit-plans.js';

let manifest: PreparedManifest;
let runner: BackboneRunner;

const plan = exitPlan;

beforeAll(async () => {
  manifest = await readManifest(BUNDLED_DIR);
  runner = await BackboneRunner.load(BUNDLED_DIR, manifest, 1, { seed: 11 });
});
afterAll(async () => {
  await runner.release();
});

describe('executor on the bundled model', () => {
  it('segmented execution with every ramp scoring reproduces the unsplit model', async () => {
    const input = await testImages(24);
    const result = await runner.run(
      { pixels: input },
      plan(manifest.ramps.map((r) => ({ id: r.id, threshold: null }))),
      () => undefined,
    );
    const whole = await OnnxSession.create(BUNDLED_ONNX, { intraOpThreads: 1 });
    const logits = (await whole.run({ pixels: input }))['logits']!.data as Float32Array;
    await whole.release();
    const expected = softmaxRows(logits, 10);
    expect(result.finalRows.length).toBe(24);
    let worst = 0;
    for (let i = 0; i < expected.length; i++)
      worst = Math.max(worst, Math.abs((expected[i] as number) - (result.finalProbs[i] as number)));
    expect(worst).toBeLessThanOrEqual(1e-4);
    expect(result.readings.map((r) => r.ramp)).toEqual(manifest.ramps.map((r) => r.id));
    expect([...result.exitRamp].every((e) => e === -1)).toBe(true);
  });

  it('re-splits at the active ramps after the first batch with a new ramp set, with the same answers', async () => {
    const input = await testImages(16);
    const ramps = plan([
      { id: 0, threshold: 0.99 },
      { id: 3, threshold: 0.95 },
      { id: 5, threshold: null },
    ]);
    const segmentsRun = async (): Promise<{
      ends: number[];
      result: Awaited<ReturnType<BackboneRunner['run']>>;
      exits: RowExit[];
    }> => {
      const ends: number[] = [];
      const exits: RowExit[] = [];
      const result = await runner.run(
        { pixels: input },
        ramps,
        (e) => exits.push(...e),
        (k) => ends.push(k),
      );
      return { ends, result, exits };
    };
    // The first batch with this set runs on the prepared segments, one per candidate cut.
    const first = await segmentsRun();
    expect(first.ends).toEqual(manifest.segments.map((_, k) => k));
    // The re-split chain is built in the background; later batches run on it.
    let later = await segmentsRun();
    for (let i = 0; i < 100 && later.ends.length !== 4; i++) {
      await new Promise((r) => setTimeout(r, 20));
      later = await segmentsRun();
    }
    expect(later.ends).toEqual([0, 3, 5, manifest.segments.length - 1]);
    expect([...later.result.exitRamp]).toEqual([...first.result.exitRamp]);
    expect(later.result.readings.map((r) => [...r.argmax])).toEqual(first.result.readings.map((r) => [...r.argmax]));
    let worst = 0;
    for (let i = 0; i < first.result.finalProbs.length; i++)
      worst = Math.max(
        worst,
        Math.abs((first.result.finalProbs[i] as number) - (later.result.finalProbs[i] as number)),
      );
    expect(worst).toBeLessThanOrEqual(1e-5);
  });

  it('emits an exited row before the batch runs its last segment (release mode keeps the row to the end)', async () => {
    const events: string[] = [];
    const first = manifest.ramps[0]!.id;
    const result = await runner.run(
      { pixels: await testImages(8) },
      plan([{ id: first, threshold: 0 }]), // threshold 0: every row exits at the first ramp
      (exits) => events.push(`exit ${exits.length} rows at ramp ${exits[0]?.ramp}`),
      (k) => events.push(`segment ${k}`),
    );
    const last = manifest.segments.length - 1;
    expect(events.indexOf(`exit 8 rows at ramp ${first}`)).toBeGreaterThan(events.indexOf(`segment ${first}`));
    expect(events.indexOf(`exit 8 rows at ramp ${first}`)).toBeLessThan(events.indexOf(`segment ${last}`));
    expect(result.finalRows.length).toBe(8); // release: every row still gives feedback
  });

  it('drop mode stops computing rows that exited', async () => {
    const first = manifest.ramps[0]!.id;
    const segments: number[] = [];
    const result = await runner.run(
      { pixels: await testImages(8) },
      plan([{ id: first, threshold: 0 }], 'drop'),
      () => undefined,
      (k) => segments.push(k),
    );
    expect(result.finalRows.length).toBe(0);
    expect(segments).toEqual([0]);
  });

  it('in drop mode the rows that stay are computed exactly as without exits', async () => {
    const input = await testImages(16);
    const ramp = manifest.ramps[1]!;
    const threshold = ramp.soloExit.threshold;
    const dropped = await runner.run({ pixels: input }, plan([{ id: ramp.id, threshold }], 'drop'), () => undefined);
    const full = await runner.run({ pixels: input }, plan([]), () => undefined);
    dropped.finalRows.forEach((row, i) => {
      for (let c = 0; c < 10; c++)
        expect(
          Math.abs((dropped.finalProbs[i * 10 + c] as number) - (full.finalProbs[row * 10 + c] as number)),
        ).toBeLessThan(1e-4);
    });
    expect(dropped.finalRows.length + [...dropped.exitRamp].filter((e) => e >= 0).length).toBe(16);
  });

  describe('drop mode probes', () => {
    // Three ramps at their calibrated solo-exit thresholds: most rows exit, most at the first.
    const ramps = (): ExitPlan['ramps'] =>
      [0, 3, 5].map((k) => ({ id: k, threshold: manifest.ramps[k]!.soloExit.threshold }));
    const earlyAnswers = async (input: Awaited<ReturnType<typeof testImages>>, p: ExitPlan) => {
      const exits: RowExit[] = [];
      const result = await runner.run({ pixels: input }, p, (e) => exits.push(...e));
      return {
        result,
        exits: exits.map((e) => ({ row: e.row, ramp: e.ramp, argmax: e.argmax })).sort((a, b) => a.row - b.row),
      };
    };

    it('probes carry every active ramp and the final answer, other exited rows leave; early answers are those of release mode', async () => {
      const input = await testImages(64);
      const release = await earlyAnswers(input, plan(ramps(), 'release'));
      const drop = await earlyAnswers(input, plan(ramps(), 'drop', 0.5));
      expect(drop.exits).toEqual(release.exits);
      expect([...drop.result.exitRamp]).toEqual([...release.result.exitRamp]);

      const records = batchFeedback(drop.result, 0);
      const probes = records.filter((r) => r.probe);
      const exitedOthers = records.filter((r) => !r.probe && r.exit >= 0);
      // The seed gives both kinds (and exited probes), so every check below has rows to hold on.
      expect(probes.filter((r) => r.exit >= 0).length).toBeGreaterThan(0);
      expect(exitedOthers.length).toBeGreaterThan(0);
      for (const r of probes) {
        expect(r.ramps.map((x) => x.id)).toEqual([0, 3, 5]);
        expect(r.final).not.toBeNull();
      }
      for (const r of exitedOthers) expect(r.final).toBeNull();
      // Rows no ramp answered reach the end whether probes or not.
      expect(records.filter((r) => r.exit === -1).every((r) => r.final !== null)).toBe(true);
      // Probes' final answers are the full model's (release mode computes it for every row).
      const releaseFinal = batchFeedback(release.result, 0);
      for (const [row, r] of records.entries())
        if (r.probe) expect(r.final?.argmax).toBe(releaseFinal[row]?.final?.argmax);
    });

    it('draws no probe at fraction 0 and every row at 1; release mode and recording make every row a probe', async () => {
      const input = await testImages(32);
      const none = await runner.run({ pixels: input }, plan(ramps(), 'drop', 0), () => undefined);
      expect([...none.probe].every((p) => p === 0)).toBe(true);
      const all = await runner.run({ pixels: input }, plan(ramps(), 'drop', 1), () => undefined);
      expect([...all.probe].every((p) => p === 1)).toBe(true);
      expect(batchFeedback(all, 0).every((r) => r.probe && r.final !== null && r.ramps.length === 3)).toBe(true);
      const release = await runner.run({ pixels: input }, plan(ramps(), 'release', 0), () => undefined);
      expect(batchFeedback(release, 0).every((r) => r.probe === true)).toBe(true);
      // What `offramp record` runs: release mode, every ramp scoring, fraction 1.
      const recording = await runner.run(
        { pixels: input },
        {
          ...plan(
            manifest.ramps.map((r) => ({ id: r.id, threshold: null })),
            'release',
            1,
          ),
        },
        () => undefined,
      );
      expect(batchFeedback(recording, 0).every((r) => r.probe === true)).toBe(true);
    });

    it('every ramp at "never": only probes run the heads, the other rows take the unsplit model with the same answers', async () => {
      const input = await testImages(48);
      const never = [0, 3, 5].map((id) => ({ id, threshold: null }));
      const release = await runner.run({ pixels: input }, plan(never, 'release'), () => undefined);
      const dormant = await runner.run({ pixels: input }, plan(never, 'drop', 0.25), () => undefined);
      const probes = [...dormant.probe].flatMap((p, row) => (p === 1 ? [row] : []));
      expect(probes.length).toBeGreaterThan(0);
      expect(probes.length).toBeLessThan(48);
      // Heads read the probes only; every row still gets the full model's answer.
      for (const reading of dormant.readings) expect([...reading.rows]).toEqual(probes);
      expect([...dormant.finalRows].sort((a, b) => a - b)).toEqual([...Array(48).keys()]);
      const dormantRecords = batchFeedback(dormant, 0);
      const releaseRecords = batchFeedback(release, 0);
      for (const [row, r] of dormantRecords.entries()) {
        expect(r.exit).toBe(-1);
        expect(r.final?.argmax).toBe(releaseRecords[row]?.final?.argmax);
        expect(r.final?.confidence).toBeCloseTo(releaseRecords[row]?.final?.confidence ?? -1, 4);
        expect(r.ramps.length).toBe(r.probe ? 3 : 0);
        if (r.probe) expect(r.ramps).toEqual(releaseRecords[row]?.ramps);
      }
      // Release mode runs a dormant batch the same way (no row can exit in either mode).
      const releaseDormant = await runner.run({ pixels: input }, plan(never, 'release', 0.25), () => undefined);
      const drawn = [...releaseDormant.probe].filter((p) => p === 1).length;
      expect(drawn).toBeGreaterThan(0);
      expect(drawn).toBeLessThan(48);
      for (const reading of releaseDormant.readings) expect(reading.rows.length).toBe(drawn);
    });
  });
});

describe('worker pool', () => {
  it('delivers exits from the worker thread before the batch result', async () => {
    const pool = await WorkerPool.start(BUNDLED_DIR, { workers: 1, intraOpThreads: 1, workerTimeoutMs: 30_000 });
    try {
      const order: string[] = [];
      const exits: RowExit[] = [];
      let idleAtDone = -1;
      expect(pool.idleWorkers).toBe(1);
      const done = pool
        .run({ pixels: await testImages(4) }, plan([{ id: manifest.ramps[0]!.id, threshold: 0 }]), (e) => {
          order.push('exit');
          exits.push(...e);
        })
        .then((r) => {
          order.push('done');
          idleAtDone = pool.idleWorkers;
          return r;
        });
      // Busy from the call on; idle again by the time the batch's promise settles (the engine steps then).
      expect(pool.idleWorkers).toBe(0);
      const result = await done;
      expect(idleAtDone).toBe(1);
      expect(order).toEqual(['exit', 'done']);
      expect(exits.map((e) => e.row).sort()).toEqual([0, 1, 2, 3]);
      expect(exits.every((e) => Math.abs(e.probs.reduce((a, b) => a + b, 0) - 1) < 1e-4)).toBe(true);
      expect(result.finalRows.length).toBe(4);
    } finally {
      await pool.close();
    }
  });
});
