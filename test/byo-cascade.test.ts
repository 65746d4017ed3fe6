/**
 * Bring your own cascade, as the README describes it: three different small classifiers fitted
 * here on the bundled Fashion-MNIST bootstrap rows, written as ONNX, named in an SLO file in
 * front of the bundled backbone, served by the real CLI (`offramp serve --config`) and asked
 * over HTTP. The members are deliberately plain — what matters is that they are different:
 *
 *  - nearest centroid on the pixels (logit = −½ ‖x − μ_c‖², linear in x);
 *  - logistic regression on the pixels, a few full-batch gradient steps;
 *  - least squares onto the one-hot labels from 4×4-average-pooled pixels (49 features).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readNpy } from '../src/model/npy.js';
import { argmaxRows } from '../src/model/numeric.js';
import { OnnxSession } from '../src/model/onnx-session.js';
import {
  BOOTSTRAP_IMAGES,
  BOOTSTRAP_LABELS,
  BUNDLED_DIR,
  TEST_LABELS,
  TEST_SERVER,
  imagesFrom,
  testImages,
} from './helpers/bundled.js';
import { IMAGE_SIDE, linearMemberModel, type LinearMember } from './helpers/member-models.js';
import { postInfer, pixelsInput } from './helpers/infer.js';
import { spawnServe, type ServeProcess } from './helpers/serve-process.js';

const CLASSES = 10;
const PIXELS = IMAGE_SIDE * IMAGE_SIDE;
const FIT_ROWS = 6000;

/** Rows × features, row-major, with each row's label. */
interface Data {
  x: Float32Array;
  y: Uint8Array;
  rows: number;
  features: number;
}

function nearestCentroid({ x, y, rows, features }: Data): LinearMember {
  const sums = new Float64Array(features * CLASSES);
  const counts = new Float64Array(CLASSES);
  for (let r = 0; r < rows; r++) {
    const c = y[r] as number;
    counts[c]!++;
    for (let f = 0; f < features; f++) sums[f * CLASSES + c]! += x[r * features + f] as number;
  }
  const weights = new Float32Array(features * CLASSES);
  const bias = new Float32Array(CLASSES);
  for (let c = 0; c < CLASSES; c++)
    for (let f = 0; f < features; f++) {
      const mean = (sums[f * CLASSES + c] as number) / (counts[c] as number);
      // −½‖x − μ‖² = x·μ − ½‖μ‖² − ½‖x‖²; the last term is the same for every class.
      weights[f * CLASSES + c] = mean;
      bias[c] = (bias[c] as number) - 0.5 * mean * mean;
    }
  return { weights, bias };
}

function logisticRegression({ x, y, rows, features }: Data, steps = 20, rate = 1): LinearMember {
  const weights = new Float32Array(features * CLASSES);
  const bias = new Float32Array(CLASSES);
  const logits = new Float64Array(CLASSES);
  for (let step = 0; step < steps; step++) {
    const gradW = new Float64Array(features * CLASSES);
    const gradB = new Float64Array(CLASSES);
    for (let r = 0; r < rows; r++) {
      const row = x.subarray(r * features, (r + 1) * features);
      logits.set(bias);
      for (let f = 0; f < features; f++) {
        const v = row[f] as number;
        if (v === 0) continue;
        for (let c = 0; c < CLASSES; c++) logits[c]! += v * (weights[f * CLASSES + c] as number);
      }
      const max = Math.max(...logits);
      let total = 0;
      for (let c = 0; c < CLASSES; c++) total += logits[c] = Math.exp((logits[c] as number) - max);
      for (let c = 0; c < CLASSES; c++) {
        const error = (logits[c] as number) / total - (c === y[r] ? 1 : 0);
        gradB[c]! += error;
        if (error === 0) continue;
        for (let f = 0; f < features; f++) gradW[f * CLASSES + c]! += error * (row[f] as number);
      }
    }
    for (let i = 0; i < weights.length; i++) weights[i]! -= (rate * (gradW[i] as number)) / rows;
    for (let c = 0; c < CLASSES; c++) bias[c]! -= (rate * (gradB[c] as number)) / rows;
  }
  return { weights, bias };
}

/** Average of each pool × pool block of every row's 28×28 image, as the member's AveragePool does. */
function pooled({ x, y, rows }: Data, pool: number): Data {
  const side = IMAGE_SIDE / pool;
  const features = side * side;
  const out = new Float32Array(rows * features);
  for (let r = 0; r < rows; r++)
    for (let i = 0; i < IMAGE_SIDE; i++)
      for (let j = 0; j < IMAGE_SIDE; j++)
        out[r * features + Math.floor(i / pool) * side + Math.floor(j / pool)]! +=
          (x[r * PIXELS + i * IMAGE_SIDE + j] as number) / (pool * pool);
  return { x: out, y, rows, features };
}

/** Ridge least squares from the features (and a constant) onto the one-hot labels. */
function leastSquares({ x, y, rows, features }: Data, ridge = 1e-3): LinearMember {
  const n = features + 1;
  const gram = new Float64Array(n * n);
  const rhs = new Float64Array(n * CLASSES);
  const row = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    for (let f = 0; f < features; f++) row[f] = x[r * features + f] as number;
    row[features] = 1;
    for (let a = 0; a < n; a++) {
      for (let b = 0; b < n; b++) gram[a * n + b]! += (row[a] as number) * (row[b] as number);
      rhs[a * CLASSES + (y[r] as number)]! += row[a] as number;
    }
  }
  for (let a = 0; a < n; a++) gram[a * n + a]! += ridge * rows;
  // Gaussian elimination with partial pivoting on [gram | rhs].
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(gram[r * n + col]!) > Math.abs(gram[pivot * n + col]!)) pivot = r;
    for (let k = 0; k < n; k++) [gram[col * n + k], gram[pivot * n + k]] = [gram[pivot * n + k]!, gram[col * n + k]!];
    for (let k = 0; k < CLASSES; k++)
      [rhs[col * CLASSES + k], rhs[pivot * CLASSES + k]] = [rhs[pivot * CLASSES + k]!, rhs[col * CLASSES + k]!];
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const factor = gram[r * n + col]! / gram[col * n + col]!;
      if (factor === 0) continue;
      for (let k = col; k < n; k++) gram[r * n + k]! -= factor * gram[col * n + k]!;
      for (let k = 0; k < CLASSES; k++) rhs[r * CLASSES + k]! -= factor * rhs[col * CLASSES + k]!;
    }
  }
  const solution = (a: number, c: number) => rhs[a * CLASSES + c]! / gram[a * n + a]!;
  const weights = Float32Array.from({ length: features * CLASSES }, (_, i) =>
    solution(Math.floor(i / CLASSES), i % CLASSES),
  );
  const bias = Float32Array.from({ length: CLASSES }, (_, c) => solution(features, c));
  return { weights, bias };
}

describe('a cascade of models fitted here, served by offramp serve --config', () => {
  let dir: string;
  let server: ServeProcess;
  let base: string;
  const files = { centroid: 'centroid.onnx', logistic: 'logistic.onnx', pooled: 'pooled-lsq.onnx' };
  const TEST_ROWS = 500;
  let testLabels: Uint8Array;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'offramp-byo-cascade-'));
    const images = await imagesFrom(BOOTSTRAP_IMAGES, FIT_ROWS);
    const labels = (await readNpy(BOOTSTRAP_LABELS)).data as Uint8Array;
    const data: Data = { x: images.data as Float32Array, y: labels, rows: FIT_ROWS, features: PIXELS };
    await mkdir(join(dir, 'members'));
    const members: Record<keyof typeof files, Uint8Array> = {
      centroid: linearMemberModel(nearestCentroid(data)),
      // The slowest fit in JS: a third of the rows is plenty for a member that only has to differ.
      logistic: linearMemberModel(logisticRegression({ ...data, rows: FIT_ROWS / 3 })),
      pooled: linearMemberModel({ ...leastSquares(pooled(data, 4)), pool: 4 }),
    };
    for (const [name, bytes] of Object.entries(members))
      await writeFile(join(dir, 'members', files[name as keyof typeof files]), bytes);
    testLabels = ((await readNpy(TEST_LABELS)).data as Uint8Array).subarray(0, TEST_ROWS);

    // The SLO file names the members relative to its own folder.
    const config = join(dir, 'slo.yaml');
    await writeFile(
      config,
      [
        `server: { ${TEST_SERVER} }`,
        'models:',
        '  - name: fmnist',
        `    path: ${JSON.stringify(BUNDLED_DIR)}`,
        '    tuner: { kind: static }',
        '    cascade:',
        '      tiers:',
        `        - members: [${Object.values(files)
          .map((f) => `members/${f}`)
          .join(', ')}]`,
        '          rule: vote',
        '          theta: 1',
      ].join('\n'),
    );
    server = spawnServe(config);
    const { httpPort } = await server.listening;
    base = `http://127.0.0.1:${httpPort}`;
  }, 120_000);

  afterAll(async () => {
    if (server) {
      server.child.kill('SIGTERM');
      await server.exited;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('each fitted member, as ONNX, classifies the test split well above chance', async () => {
    const images = await testImages(TEST_ROWS);
    for (const file of Object.values(files)) {
      const session = await OnnxSession.create(join(dir, 'members', file), { intraOpThreads: 1 });
      const logits = (await session.run({ pixels: images }))['logits']!.data as Float32Array;
      await session.release();
      const predicted = argmaxRows(logits, CLASSES);
      const accuracy = predicted.filter((c, i) => c === testLabels[i]).length / TEST_ROWS;
      expect(accuracy, file).toBeGreaterThan(0.6);
    }
  });

  it('answers through the cascade: agreed rows at tier 0 with the votes, the others from the served model', async () => {
    const tiers: number[] = [];
    for (let i = 0; i < 30; i++) {
      const answer = await postInfer(base, 'fmnist', [pixelsInput(await testImages(1, i))]);
      expect(answer.status).toBe(200);
      const { tier, tiers: count, votes, agreement } = answer.parameters;
      const label = answer.outputs['label']![0] as string;
      expect(count).toBe(2);
      tiers.push(tier as number);
      if (tier === 0) {
        expect(votes).toBe([label, label, label].join(','));
        expect(agreement).toBe(1);
      } else {
        expect(tier).toBe(1);
        expect(votes).toBeUndefined();
      }
    }
    expect(tiers).toContain(0);
    expect(tiers).toContain(1);
    const exits = (await (await fetch(`${base}/v2/models/fmnist/exits`)).json()) as {
      cascade: { tiers: { members: string[] }[] };
    };
    expect(exits.cascade.tiers[0]!.members).toEqual(Object.values(files).map((f) => join(dir, 'members', f)));
  });
});
