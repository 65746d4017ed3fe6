import { describe, expect, it } from 'vitest';
import { buildHeadModel, HEAD_OUTPUT, type HeadWeights } from '../ramps/heads/head-onnx.js';
import { extractFeatures, featureCount } from '../ramps/heads/head-kinds.js';
import type { HeadKind } from '../src/model/manifest.js';
import { headLogits, trainHead } from '../ramps/heads/train-head.js';
import { argmaxRows, seededRandom, softmaxRows } from '../src/model/numeric.js';
import { fitTemperature, soloExit } from '../ramps/heads/calibration.js';
import { encodeModel } from '../src/model/onnx-model.js';
import { OnnxSession } from '../src/model/onnx-session.js';

const random = seededRandom(42);
const randomArray = (n: number, scale = 1) => Float32Array.from({ length: n }, () => (random() * 2 - 1) * scale);

function randomWeights(kind: HeadKind, features: number, hidden: number, classes: number): HeadWeights {
  const withHidden = kind !== 'gap-linear';
  return {
    kind,
    featureCount: features,
    hidden: withHidden ? hidden : 0,
    classes,
    ...(withHidden ? { w1: randomArray(features * hidden), b1: randomArray(hidden) } : {}),
    w2: randomArray((withHidden ? hidden : features) * classes),
    b2: randomArray(classes),
    featureMean: randomArray(features, 0.5),
    featureStd: Float32Array.from({ length: features }, () => 0.5 + random()),
    temperature: 1.7,
  };
}

describe('exported ONNX heads compute exactly what the JS head computes', () => {
  const cases: { kind: HeadKind; dims: number[] }[] = [
    { kind: 'gap-linear', dims: [3, 8, 6, 6] },
    { kind: 'gap-mlp', dims: [3, 8, 6, 6] },
    { kind: 'quad-mlp', dims: [3, 8, 7, 7] }, // odd size: overlapping quadrants
    { kind: 'quad-mlp', dims: [2, 4, 28, 28] },
    { kind: 'pooler', dims: [3, 5, 16] },
    { kind: 'mlp', dims: [4, 12] },
  ];
  for (const { kind, dims } of cases) {
    it(`${kind} on [${dims.join(',')}]`, async () => {
      const classes = 5;
      const size = dims.reduce((a, b) => a * b, 1);
      const tensor = { type: 'float32', data: randomArray(size), dims };
      const weights = randomWeights(kind, featureCount(kind, dims), 6, classes);
      const symbolic = ['batch', ...dims.slice(1)];
      const model = buildHeadModel(weights, { name: 'cut/tensor:0', dims: symbolic }, [{ domain: '', version: 17 }]);
      const session = await OnnxSession.create(encodeModel(model));
      const onnxProbs = (await session.run({ 'cut/tensor:0': tensor }))[HEAD_OUTPUT]?.data as Float32Array;
      await session.release();
      const jsProbs = softmaxRows(
        headLogits(weights, extractFeatures(kind, tensor), dims[0] as number),
        classes,
        weights.temperature,
      );
      expect(onnxProbs.length).toBe(jsProbs.length);
      for (let i = 0; i < jsProbs.length; i++)
        expect(Math.abs((onnxProbs[i] as number) - (jsProbs[i] as number))).toBeLessThan(1e-5);
    });
  }
});

describe('feature extraction', () => {
  it('quadrant pooling averages each quarter of the plane', () => {
    // One row, one channel, 4x4 plane numbered 0..15.
    const tensor = { type: 'float32', data: Float32Array.from({ length: 16 }, (_, i) => i), dims: [1, 1, 4, 4] };
    expect([...extractFeatures('quad-mlp', tensor)]).toEqual([2.5, 4.5, 10.5, 12.5]);
    expect([...extractFeatures('gap-mlp', tensor)]).toEqual([7.5]);
  });
  it('the pooler takes the first token of every row', () => {
    const tensor = { type: 'float32', data: Float32Array.from({ length: 12 }, (_, i) => i), dims: [2, 3, 2] };
    expect([...extractFeatures('pooler', tensor)]).toEqual([0, 1, 6, 7]);
  });
});

describe('head training', () => {
  it('learns a separable problem from soft targets', async () => {
    const rows = 600;
    const features = 6;
    const classes = 3;
    const x = randomArray(rows * features);
    const targets = new Float32Array(rows * classes);
    for (let r = 0; r < rows; r++) {
      const label = (x[r * features] as number) > 0.3 ? 0 : (x[r * features + 1] as number) > 0 ? 1 : 2;
      targets[r * classes + label] = 1;
    }
    const weights = await trainHead(
      { features: x, targets, rows, featureCount: features, classes },
      { kind: 'gap-mlp', hidden: 16, epochs: 60, batchSize: 64, learningRate: 1e-2, weightDecay: 0, seed: 3 },
    );
    const predicted = argmaxRows(headLogits(weights, x, rows), classes);
    const truth = argmaxRows(targets, classes);
    let agree = 0;
    for (let r = 0; r < rows; r++) if (predicted[r] === truth[r]) agree++;
    expect(agree / rows).toBeGreaterThan(0.9);
  });
});

describe('calibration', () => {
  it('temperature scaling recovers the temperature that generated the labels', () => {
    const rows = 4000;
    const classes = 4;
    const trueT = 2.5;
    const logits = randomArray(rows * classes, 6);
    const probs = softmaxRows(logits, classes, trueT);
    const labels = new Int32Array(rows);
    for (let r = 0; r < rows; r++) {
      let u = random();
      let c = 0;
      while (c < classes - 1 && u > (probs[r * classes + c] as number)) u -= probs[r * classes + c++] as number;
      labels[r] = c;
    }
    const t = fitTemperature(logits, labels, classes);
    expect(t).toBeGreaterThan(trueT * 0.85);
    expect(t).toBeLessThan(trueT * 1.15);
  });

  it('never sharpens: rows that all agree leave the temperature at 1, so confidences stay rankable', () => {
    const rows = 500;
    const logits = randomArray(rows * 2, 8);
    const labels = Int32Array.from({ length: rows }, (_, r) => (logits[2 * r]! >= logits[2 * r + 1]! ? 0 : 1));
    expect(fitTemperature(logits, labels, 2)).toBeCloseTo(1, 3);
  });

  it('solo exit takes the most confident rows while disagreement stays within budget', () => {
    // 10 rows, 2 classes; confidences descend; row 3 disagrees.
    const conf = [0.99, 0.98, 0.97, 0.96, 0.95, 0.9, 0.8, 0.7, 0.6, 0.55];
    const probs = new Float32Array(conf.flatMap((c) => [c, 1 - c]));
    const finalArgmax = Int32Array.from(conf.map((_, i) => (i === 3 ? 1 : 0)));
    const atZero = soloExit(probs, finalArgmax, 2, 0);
    expect(atZero.exitFraction).toBeCloseTo(0.3);
    expect(atZero.threshold).toBeCloseTo(0.97);
    const atTen = soloExit(probs, finalArgmax, 2, 0.1);
    expect(atTen.exitFraction).toBe(1);
    expect(atTen.agreement).toBeCloseTo(0.9);
  });
});
