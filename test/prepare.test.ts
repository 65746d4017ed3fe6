/**
 * `offramp prepare` end to end: on a slice of the real bootstrap data with the bundled backbone
 * (always), and on the standard architectures with small random data (when the zoo exists).
 */
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { readManifest } from '../src/model/manifest.js';
import { writeNpy } from '../src/model/npy.js';
import { readModel } from '../src/model/onnx-model.js';
import { verifySplit } from '../ramps/verify.js';
import { seededRandom } from '../src/model/numeric.js';
import { BOOTSTRAP_IMAGES, BUNDLED_ONNX } from './helpers/bundled.js';
import { titled, zooModel } from './helpers/models.js';

async function quietly<T>(run: () => Promise<T>): Promise<T> {
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = () => true;
  process.stderr.write = () => true;
  try {
    return await run();
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

const tinyRun = ['--max-batch', '2', '--profile-runs', '2', '--epochs', '3'];

describe('prepare on the bundled backbone', () => {
  it('writes a prepared directory whose segments and heads reproduce what it reports', async () => {
    const out = await mkdtemp(join(tmpdir(), 'offramp-prepare-'));
    const code = await quietly(() =>
      main(['prepare', BUNDLED_ONNX, '--data', BOOTSTRAP_IMAGES, '--out', out, '--limit', '400', ...tinyRun, '--json']),
    );
    expect(code).toBe(0);
    const manifest = await readManifest(out);
    const candidates = (await verifySplit(await readModel(BUNDLED_ONNX))).cuts;
    expect(manifest.ramps.map((r) => r.tensor)).toEqual(candidates);
    expect(manifest.segments).toHaveLength(candidates.length + 1);
    for (const s of manifest.segments) expect(existsSync(join(out, s.file))).toBe(true);
    for (const r of manifest.ramps) {
      expect(existsSync(join(out, r.head.file))).toBe(true);
      expect(r.head.exportMaxDiff).toBeLessThan(1e-4);
      expect(r.head.trials.map((t) => t.kind)).toEqual(['gap-linear', 'gap-mlp', 'quad-mlp']);
      expect(r.head.temperature).toBeGreaterThan(0);
      expect(r.soloCurve.length).toBeGreaterThan(0);
    }
    expect(manifest.profile.batchSizes).toEqual([1, 2]);
    expect(manifest.profile.segmentMs.every((s) => s.length === 2 && s.every((ms) => ms > 0))).toBe(true);
    expect(manifest.bootstrap).toMatchObject({ rows: 400, budget: 0.01 });
    expect(manifest.model).toMatchObject({ output: 'logits', classes: 10, outputIsProbability: false });
    // Heads trained on the backbone's own predictions agree with it far above chance (10 %).
    expect(Math.max(...manifest.ramps.map((r) => r.agreement))).toBeGreaterThan(0.7);
  });

  it('reports a data file whose rows do not fit the model input', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'offramp-prepare-'));
    const data = join(dir, 'wrong.npy');
    await writeNpy(data, { type: 'float32', shape: [30, 3, 28, 28], data: new Float32Array(30 * 3 * 28 * 28) });
    const messages: string[] = [];
    const err = process.stderr.write.bind(process.stderr);
    process.stderr.write = (chunk: string) => messages.push(String(chunk)) > 0;
    try {
      expect(await main(['prepare', BUNDLED_ONNX, '--data', data, '--out', join(dir, 'out'), '--json'])).toBe(1);
    } finally {
      process.stderr.write = err;
    }
    expect(messages.join('')).toContain(
      "data rows have shape [3,28,28] but model input 'pixels' expects [1,28,28] per row",
    );
  });
});

/** Random rows a model of this input accepts: pixels in [0,1), or token ids 1..999. */
async function randomData(path: string, kind: 'image' | 'tokens', rows: number): Promise<void> {
  const random = seededRandom(5);
  if (kind === 'image') {
    await writeNpy(path, {
      type: 'float32',
      shape: [rows, 3, 224, 224],
      data: Float32Array.from({ length: rows * 3 * 224 * 224 }, () => random()),
    });
  } else {
    await writeNpy(path, {
      type: 'int64',
      shape: [rows, 16],
      data: BigInt64Array.from({ length: rows * 16 }, () => BigInt(1 + Math.floor(random() * 999))),
    });
  }
}

describe('prepare on standard architectures (random weights, random data)', () => {
  const cases = [
    { name: 'resnet18', kind: 'image' as const },
    { name: 'resnet50', kind: 'image' as const },
    { name: 'mobilenet_v2', kind: 'image' as const },
    { name: 'efficientnet_b0', kind: 'image' as const },
    { name: 'text_encoder', kind: 'tokens' as const },
  ];
  for (const { name, kind } of cases) {
    const model = zooModel(name);
    it.skipIf(model.missing !== undefined)(
      titled(`${name}: one head per candidate, exported heads match their training-time math`, model),
      async () => {
        const dir = await mkdtemp(join(tmpdir(), `offramp-prepare-${name}-`));
        const data = join(dir, 'data.npy');
        await randomData(data, kind, 24);
        const heads = kind === 'image' ? 'gap-linear' : 'pooler';
        const code = await quietly(() =>
          main([
            'prepare',
            model.path,
            '--data',
            data,
            '--out',
            join(dir, 'out'),
            '--heads',
            heads,
            '--max-batch',
            '1',
            '--profile-runs',
            '1',
            '--epochs',
            '1',
            '--json',
          ]),
        );
        expect(code).toBe(0);
        const manifest = await readManifest(join(dir, 'out'));
        expect(manifest.ramps.length).toBeGreaterThan(0);
        expect(manifest.ramps.every((r) => r.head.kind === heads && r.head.exportMaxDiff < 1e-4)).toBe(true);
        if (kind === 'tokens') expect(manifest.ramps.some((r) => r.side.length > 0)).toBe(true);
      },
    );
  }
});
