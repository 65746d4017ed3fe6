/**
 * `offramp prepare` end to end: on a slice of the real bootstrap data with the bundled backbone
 * (always), and on the standard architectures with small random data (when the zoo exists).
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { readManifest } from '../src/model/manifest.js';
import { writeNpy } from '../src/model/npy.js';
import { readModel } from '../src/model/onnx-model.js';
import { verifySplit } from '../ramps/verify.js';
import { feedsAtLength, typicalBatchLengths } from '../ramps/latency-profile.js';
import { seededRandom } from '../src/model/numeric.js';
import {
  BOOTSTRAP_IMAGES,
  BUNDLED_ONNX,
  SPAM_BERT_LABELS,
  SPAM_BERT_ONNX,
  SPAM_BERT_TOKENIZER,
  SPAM_BOOTSTRAP,
} from './helpers/bundled.js';
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

/** Runs the CLI, keeping what it writes. */
async function captured(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = (chunk: string) => (stdout += String(chunk)).length > 0;
  process.stderr.write = (chunk: string) => (stderr += String(chunk)).length > 0;
  try {
    return { code: await main(argv), stdout, stderr };
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
}

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

describe('prepare on the bundled text backbone (spam-bert: input_ids + attention_mask)', () => {
  const quick = ['--limit', '40', '--epochs', '1', '--max-batch', '2', '--profile-runs', '1'];

  it('trains first-token heads on JSON Lines texts and writes the text spec and the tokenizer', async () => {
    const out = await mkdtemp(join(tmpdir(), 'offramp-prepare-text-'));
    const argv = ['prepare', SPAM_BERT_ONNX, '--data', SPAM_BOOTSTRAP, '--tokenizer', SPAM_BERT_TOKENIZER];
    const result = await captured([...argv, '--labels', SPAM_BERT_LABELS, '--out', out, ...quick]);
    expect(result.stderr).not.toContain('offramp:');
    expect(result.code).toBe(0);
    const manifest = await readManifest(out);
    expect(manifest.model.inputs.map((i) => i.name)).toEqual(['input_ids', 'attention_mask']);
    expect(manifest.model.text).toEqual({
      tokenizer: 'tokenizer.json',
      maxLength: 256,
      padId: 0,
      inputs: { ids: 'input_ids', mask: 'attention_mask' },
      textInput: 'text',
    });
    expect(await readFile(join(out, 'tokenizer.json'))).toEqual(await readFile(SPAM_BERT_TOKENIZER));
    expect(manifest.model).toMatchObject({ labels: ['ham', 'spam'], classes: 2, output: 'logits' });
    expect(manifest.ramps).toHaveLength(7);
    for (const r of manifest.ramps) {
      expect(r.head.kind).toBe('pooler');
      expect(r.head.exportMaxDiff).toBeLessThan(1e-4);
      expect(existsSync(join(out, r.head.file))).toBe(true);
    }
    // The attention mask is carried across the cuts of every layer that still reads it.
    expect(manifest.ramps.filter((r) => r.side.some((t) => t.name === '/Mul_output_0'))).toHaveLength(6);
    // Most bootstrap texts fill the tokenizer's 256 ids: batches are profiled at that length.
    expect(manifest.profile.sequenceLengths).toEqual([256, 256]);
    expect(manifest.profile.method).toContain('256, 256 ids for batch 1, 2');
    // The summary names each ramp's tensor with its agreement and solo exit at the 1 % budget.
    expect(result.stdout).toMatch(/tensor.*agreement\s+exit@1\.0%/);
    for (const r of manifest.ramps) expect(result.stdout).toContain(r.tensor);
    // `offramp profile` re-measures at the lengths prepare measured at, not at one id per row.
    const reprofiled = await captured(['profile', '--model', out, '--runs', '1', '--rounds', '1', '--json']);
    expect(reprofiled.code).toBe(0);
    const after = (await readManifest(out)).profile;
    expect(after.sequenceLengths).toEqual([256, 256]);
    expect(after.method).toContain('256, 256 ids for batch 1, 2');
  });

  it('refuses JSON Lines data without a tokenizer, in one line', async () => {
    const out = join(await mkdtemp(join(tmpdir(), 'offramp-prepare-text-')), 'out');
    const argv = ['prepare', SPAM_BERT_ONNX, '--data', SPAM_BOOTSTRAP, '--out', out, ...quick, '--json'];
    const result = await captured(argv);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `offramp: ${SPAM_BOOTSTRAP} holds texts: prepare needs the model's tokenizer (--tokenizer tokenizer.json)\n`,
    );
  });

  it('refuses a tokenizer whose maximum length the model cannot run, suggesting --max-length', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'offramp-prepare-text-'));
    const tokenizer = JSON.parse(await readFile(SPAM_BERT_TOKENIZER, 'utf8')) as { truncation: { max_length: number } };
    tokenizer.truncation.max_length = 512; // spam-bert has 256 position embeddings
    const long = join(dir, 'tokenizer-512.json');
    await writeFile(long, JSON.stringify(tokenizer));
    const argv = ['prepare', SPAM_BERT_ONNX, '--data', SPAM_BOOTSTRAP, '--tokenizer', long];
    const result = await captured([...argv, '--out', join(dir, 'out'), ...quick, '--json']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`offramp: ${SPAM_BERT_ONNX} cannot run a row of 512 token ids`);
    expect(result.stderr).toContain('pass a smaller --max-length');
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    // The same tokenizer cut to what the model takes works.
    const fits = await captured([...argv, '--max-length', '128', '--out', join(dir, 'fits'), ...quick, '--json']);
    expect(fits.code).toBe(0);
    expect((await readManifest(join(dir, 'fits'))).model.text?.maxLength).toBe(128);
  });

  it('tells a text model given .npy data to use JSON Lines with --tokenizer', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'offramp-prepare-text-'));
    const data = join(dir, 'ids.npy');
    await writeNpy(data, { type: 'int64', shape: [30, 8], data: new BigInt64Array(30 * 8).fill(5n) });
    const argv = ['prepare', SPAM_BERT_ONNX, '--data', data, '--out', join(dir, 'out'), ...quick, '--json'];
    const result = await captured(argv);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `offramp: ${SPAM_BERT_ONNX} is a text model (input_ids, attention_mask): give its bootstrap texts as JSON Lines (.jsonl or .jsonl.gz) with --tokenizer\n`,
    );
  });
});

describe('text batches for the latency profile', () => {
  it('measures batch size b at the median of the longest of b rows: the 0.5^(1/b) length quantile', () => {
    const lengths = Array.from({ length: 100 }, (_, i) => 100 - i); // 1..100, in any order
    // b = 1: the median; b = 2: P(longest ≤ q) = F(q)² = 0.5 at F(q) = 0.707; b = 16: 0.958.
    expect(typicalBatchLengths(lengths, [1, 2, 16])).toEqual([50, 71, 96]);
  });

  it('cuts or pads every row to the length: padding is the pad id with mask 0', () => {
    const ids = { type: 'int64', data: BigInt64Array.from([2n, 7n, 3n, 2n, 3n, 0n]), dims: [2, 3] };
    const mask = { type: 'int64', data: BigInt64Array.from([1n, 1n, 1n, 1n, 1n, 0n]), dims: [2, 3] };
    const spec = { inputs: { ids: 'input_ids', mask: 'attention_mask' }, padId: 9 };
    const longer = feedsAtLength({ input_ids: ids, attention_mask: mask }, spec, 4);
    expect(Array.from(longer['input_ids']!.data as BigInt64Array, Number)).toEqual([2, 7, 3, 9, 2, 3, 0, 9]);
    expect(Array.from(longer['attention_mask']!.data as BigInt64Array, Number)).toEqual([1, 1, 1, 0, 1, 1, 0, 0]);
    const shorter = feedsAtLength({ input_ids: ids, attention_mask: mask }, spec, 2);
    expect(shorter['input_ids']!.dims).toEqual([2, 2]);
    expect(Array.from(shorter['input_ids']!.data as BigInt64Array, Number)).toEqual([2, 7, 2, 3]);
  });
});
