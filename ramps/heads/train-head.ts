/**
 * Trains one ramp head with @tensorflow/tfjs (WebAssembly backend: pure JS is enough for heads
 * this small, and tfjs-node cannot install here). The backbone stays frozen: the head sees only
 * cached features, and learns the backbone's own predicted distribution (distillation), because
 * the budget it is judged by is agreement with the original model, not true labels.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import type { HeadKind } from '../../src/model/manifest.js';
import { hasHiddenLayer, hiddenActivation } from './head-kinds.js';
import type { HeadWeights } from './head-onnx.js';
import { seededRandom } from '../../src/model/numeric.js';

let backendReady: Promise<void> | undefined;

/** Selects the WebAssembly backend once; it is several times faster than tfjs's plain-JS CPU backend. */
function ensureBackend(): Promise<void> {
  backendReady ??= (async () => {
    const ok = await tf.setBackend('wasm').catch(() => false);
    if (!ok) await tf.setBackend('cpu');
    await tf.ready();
  })();
  return backendReady;
}

export interface TrainOptions {
  kind: HeadKind;
  /** Units in the hidden layer (ignored by gap-linear). */
  hidden: number;
  epochs: number;
  batchSize: number;
  learningRate: number;
  weightDecay: number;
  seed: number;
}

export const DEFAULT_TRAIN_OPTIONS: Omit<TrainOptions, 'kind'> = {
  hidden: 64,
  epochs: 40,
  batchSize: 256,
  learningRate: 3e-3,
  weightDecay: 1e-4,
  seed: 1,
};

export interface TrainingSet {
  /** [rows × featureCount] */
  features: Float32Array;
  /** [rows × classes]: the backbone's softmax for each row. */
  targets: Float32Array;
  rows: number;
  featureCount: number;
  classes: number;
}

function standardisation(set: TrainingSet): { mean: Float32Array; std: Float32Array } {
  const { features, rows, featureCount } = set;
  const mean = new Float32Array(featureCount);
  const std = new Float32Array(featureCount);
  for (let r = 0; r < rows; r++)
    for (let f = 0; f < featureCount; f++)
      mean[f] = (mean[f] as number) + (features[r * featureCount + f] as number) / rows;
  for (let r = 0; r < rows; r++) {
    for (let f = 0; f < featureCount; f++) {
      const d = (features[r * featureCount + f] as number) - (mean[f] as number);
      std[f] = (std[f] as number) + (d * d) / rows;
    }
  }
  // A feature that barely varies against its own size (a dead ReLU channel, a near-constant
  // pooled activation) carries little signal but would be scaled up enormously, amplifying
  // float32 rounding in the exported head: floor the spread at 1 % of the mean's magnitude.
  for (let f = 0; f < featureCount; f++) {
    const spread = Math.max(Math.sqrt(std[f] as number), 0.01 * Math.abs(mean[f] as number));
    std[f] = spread > 1e-6 ? spread : 1;
  }
  return { mean, std };
}

function glorot(random: () => number, fanIn: number, fanOut: number): Float32Array {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  const w = new Float32Array(fanIn * fanOut);
  for (let i = 0; i < w.length; i++) w[i] = (random() * 2 - 1) * limit;
  return w;
}

/** Trains a head; returns its weights with temperature 1 (calibrate afterwards). */
export async function trainHead(set: TrainingSet, options: TrainOptions): Promise<HeadWeights> {
  await ensureBackend();
  const random = seededRandom(options.seed);
  const { mean, std } = standardisation(set);
  const hidden = hasHiddenLayer(options.kind);
  const inputs = hidden ? options.hidden : set.featureCount;

  const standardised = new Float32Array(set.features.length);
  for (let r = 0; r < set.rows; r++) {
    for (let f = 0; f < set.featureCount; f++) {
      const i = r * set.featureCount + f;
      standardised[i] = ((set.features[i] as number) - (mean[f] as number)) / (std[f] as number);
    }
  }

  const x = tf.tensor2d(standardised, [set.rows, set.featureCount]);
  const y = tf.tensor2d(set.targets, [set.rows, set.classes]);
  const w1 = hidden
    ? tf.variable(tf.tensor2d(glorot(random, set.featureCount, options.hidden), [set.featureCount, options.hidden]))
    : undefined;
  const b1 = hidden ? tf.variable(tf.zeros([options.hidden])) : undefined;
  const w2 = tf.variable(tf.tensor2d(glorot(random, inputs, set.classes), [inputs, set.classes]));
  const b2 = tf.variable(tf.zeros([set.classes]));
  const activation = hiddenActivation(options.kind);

  const forward = (xb: tf.Tensor2D): tf.Tensor2D => {
    let h: tf.Tensor2D = xb;
    if (w1 && b1) {
      const pre = tf.add<tf.Tensor2D>(tf.matMul(xb, w1), b1);
      h = activation === 'tanh' ? tf.tanh(pre) : tf.relu(pre);
    }
    return tf.add<tf.Tensor2D>(tf.matMul(h, w2), b2);
  };

  const steps = Math.ceil(set.rows / options.batchSize);
  const totalSteps = steps * options.epochs;
  const optimizer = tf.train.adam(options.learningRate);
  const order = Array.from({ length: set.rows }, (_, i) => i);
  let step = 0;
  for (let epoch = 0; epoch < options.epochs; epoch++) {
    // Fisher–Yates with the seeded generator: reproducible heads.
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j] as number, order[i] as number];
    }
    const shuffled = tf.tensor1d(Int32Array.from(order), 'int32');
    for (let s = 0; s < steps; s++) {
      // Cosine decay: large early steps, fine ones at the end, no schedule to tune.
      (optimizer as unknown as { learningRate: number }).learningRate =
        options.learningRate * 0.5 * (1 + Math.cos((Math.PI * step) / totalSteps));
      tf.tidy(() => {
        const idx = shuffled.slice(
          [s * options.batchSize],
          [Math.min(options.batchSize, set.rows - s * options.batchSize)],
        );
        const xb = tf.gather<tf.Tensor2D>(x, idx);
        const yb = tf.gather<tf.Tensor2D>(y, idx);
        optimizer.minimize(() => {
          const loss = tf.losses.softmaxCrossEntropy(yb, forward(xb));
          const decay = tf.mul(
            options.weightDecay,
            tf.add(tf.sum(tf.square(w2)), w1 ? tf.sum(tf.square(w1)) : tf.scalar(0)),
          );
          return tf.add<tf.Scalar>(loss, decay);
        });
      });
      step++;
    }
    shuffled.dispose();
  }

  const result: HeadWeights = {
    kind: options.kind,
    featureCount: set.featureCount,
    hidden: hidden ? options.hidden : 0,
    classes: set.classes,
    w2: (await w2.data()) as Float32Array,
    b2: (await b2.data()) as Float32Array,
    featureMean: mean,
    featureStd: std,
    temperature: 1,
  };
  if (w1 && b1) {
    result.w1 = (await w1.data()) as Float32Array;
    result.b1 = (await b1.data()) as Float32Array;
  }
  tf.dispose([x, y, w2, b2, ...(w1 ? [w1] : []), ...(b1 ? [b1] : [])]);
  optimizer.dispose();
  return result;
}

/** Applies a head in JS (standardise → layers → logits), for calibration and model selection. */
export function headLogits(weights: HeadWeights, features: Float32Array, rows: number): Float32Array {
  const { featureCount: nf, classes, featureMean, featureStd } = weights;
  const logits = new Float32Array(rows * classes);
  const x = new Float32Array(nf);
  const activation = hiddenActivation(weights.kind);
  const h = new Float32Array(weights.hidden);
  for (let r = 0; r < rows; r++) {
    for (let f = 0; f < nf; f++)
      x[f] = ((features[r * nf + f] as number) - (featureMean[f] as number)) / (featureStd[f] as number);
    let input = x;
    let width = nf;
    if (weights.w1 && weights.b1) {
      for (let o = 0; o < weights.hidden; o++) {
        let sum = weights.b1[o] as number;
        for (let i = 0; i < nf; i++) sum += (x[i] as number) * (weights.w1[i * weights.hidden + o] as number);
        h[o] = activation === 'tanh' ? Math.tanh(sum) : Math.max(0, sum);
      }
      input = h;
      width = weights.hidden;
    }
    for (let c = 0; c < classes; c++) {
      let sum = weights.b2[c] as number;
      for (let i = 0; i < width; i++) sum += (input[i] as number) * (weights.w2[i * classes + c] as number);
      logits[r * classes + c] = sum;
    }
  }
  return logits;
}
