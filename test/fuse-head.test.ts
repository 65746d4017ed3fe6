import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fuseHead } from '../src/model/fuse-head.js';
import { readManifest, type PreparedManifest } from '../src/model/manifest.js';
import { decodeModel, encodeModel, type ModelProto } from '../src/model/onnx-model.js';
import { OnnxSession } from '../src/model/onnx-session.js';
import { splitAtRamps } from '../src/model/split-at-ramps.js';
import type { HostTensor } from '../src/model/tensor.js';
import { BackboneRunner } from '../src/engine/executor/backbone-runner.js';
import type { BatchResult, ExitPlan } from '../src/engine/backend.js';
import { BUNDLED_DIR, testImages } from './helpers/bundled.js';

let manifest: PreparedManifest;
let model: ModelProto;
let heads: ModelProto[];

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs((a[i] as number) - (b[i] as number)));
  return worst;
}

beforeAll(async () => {
  manifest = await readManifest(BUNDLED_DIR);
  model = decodeModel(await readFile(join(BUNDLED_DIR, manifest.model.file)));
  heads = await Promise.all(
    manifest.ramps.map(async (r) => decodeModel(await readFile(join(BUNDLED_DIR, r.head.file)))),
  );
});

describe('a head fused into the segment before it (bundled model)', () => {
  it('one call returns the boundary and the head: the chain reproduces the whole model, the heads their own output', async () => {
    const ids = [0, 3, 5];
    const input = await testImages(12);
    const segments = splitAtRamps(model, manifest, ids);
    const whole = await OnnxSession.create(join(BUNDLED_DIR, manifest.model.file), { intraOpThreads: 1 });
    const expected = (await whole.run({ pixels: input }))['logits']!.data as Float32Array;
    await whole.release();

    const pool: Record<string, HostTensor> = { pixels: input };
    for (const [j, segment] of segments.entries()) {
      const id = ids[j];
      const ramp = id === undefined ? undefined : manifest.ramps[id];
      const fused = ramp ? fuseHead(segment.model, heads[id as number]!, ramp.tensor, `offramp.head${id}/`) : undefined;
      const session = await OnnxSession.create(encodeModel(fused?.model ?? segment.model), { intraOpThreads: 1 });
      const feeds = Object.fromEntries(segment.inputs.map((io) => [io.name, pool[io.name] as HostTensor]));
      const names = [...segment.outputs.map((o) => o.name), ...(fused ? [fused.probs] : [])];
      const out = await session.run(feeds, names);
      await session.release();
      Object.assign(pool, out);
      if (!ramp || !fused) continue;
      expect(fused.probs).toBe(`offramp.head${id}/probs`);
      const head = await OnnxSession.create(join(BUNDLED_DIR, ramp.head.file), { intraOpThreads: 1 });
      const apart = (await head.run({ [ramp.tensor]: pool[ramp.tensor] as HostTensor }))['probs']!.data as Float32Array;
      await head.release();
      expect(maxAbsDiff(out[fused.probs]!.data as Float32Array, apart)).toBeLessThanOrEqual(1e-5);
    }
    expect(maxAbsDiff(pool['logits']!.data as Float32Array, expected)).toBeLessThanOrEqual(1e-4);
  });

  it('refuses a head that reads another tensor than the segment ends at, or an opset the segment lacks', () => {
    const [first, second] = splitAtRamps(model, manifest, [0]);
    const ramp0 = manifest.ramps[0]!;
    const ramp3 = manifest.ramps[3]!;
    expect(() => fuseHead(first!.model, heads[3]!, ramp3.tensor, 'h/')).toThrow(/does not output/);
    expect(() => fuseHead(first!.model, heads[3]!, ramp0.tensor, 'h/')).toThrow(/must read only/);
    expect(() => fuseHead(second!.model, heads[0]!, ramp0.tensor, 'h/')).toThrow(/does not output/);
    const newerOpset = { ...heads[0]!, opsetImport: [{ domain: '', version: 99 }] };
    expect(() => fuseHead(first!.model, newerOpset, ramp0.tensor, 'h/')).toThrow(/opset/);
  });
});

describe('the runner fuses the active heads once it has re-split', () => {
  let runner: BackboneRunner;
  beforeAll(async () => {
    runner = await BackboneRunner.load(BUNDLED_DIR, manifest, 1, { seed: 3 });
  });
  afterAll(async () => {
    await runner.release();
  });

  // Drop mode with no probes, so both runs keep the same rows whatever the draws.
  for (const [label, ids, mode] of [
    ['ramps 1,4,6, release mode', [1, 4, 6], 'release'],
    ['every ramp, drop mode', [0, 1, 2, 3, 4, 5, 6, 7], 'drop'],
  ] as const) {
    it(`${label}: the same exits, readings and answers as with the heads run apart`, async () => {
      const input = await testImages(32, 100);
      const plan: ExitPlan = {
        policy: 'confidence',
        patience: 2,
        mode,
        feedbackFraction: 0,
        ramps: ids.map((id) => ({ id, threshold: manifest.ramps[id]!.soloExit.threshold })),
      };
      // The first batch with a new ramp set runs on the prepared segments, heads apart.
      const apart = await runner.run({ pixels: input }, plan, () => undefined);
      expect(apart.timings.headMs.length).toBeGreaterThan(0);
      expect(apart.timings.headMs.every((ms) => ms > 0)).toBe(true);
      let fused: BatchResult = apart;
      for (let i = 0; i < 200 && fused.timings.headMs.some((ms) => ms > 0); i++) {
        await new Promise((r) => setTimeout(r, 20));
        fused = await runner.run({ pixels: input }, plan, () => undefined);
      }
      // Fused heads report no time of their own: it is inside their segment's.
      expect(fused.timings.headMs.every((ms) => ms === 0)).toBe(true);
      // Release mode runs every segment (drop mode stops once every row has left).
      if (mode === 'release') expect(fused.timings.segmentMs.length).toBe(ids.length + 1);

      expect([...fused.exitRamp]).toEqual([...apart.exitRamp]);
      expect(fused.exitRamp.some((e) => e !== -1)).toBe(true);
      expect([...fused.finalRows]).toEqual([...apart.finalRows]);
      expect(fused.readings.map((r) => [r.ramp, ...r.rows, ...r.argmax])).toEqual(
        apart.readings.map((r) => [r.ramp, ...r.rows, ...r.argmax]),
      );
      fused.readings.forEach((r, i) =>
        expect(maxAbsDiff(r.confidence, apart.readings[i]!.confidence)).toBeLessThanOrEqual(1e-5),
      );
      expect(maxAbsDiff(fused.finalProbs, apart.finalProbs)).toBeLessThanOrEqual(1e-4);
    });
  }
});
