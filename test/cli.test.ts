import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { titled, zooModel } from './helpers/models.js';
import { runCli as run } from './helpers/run-cli.js';
import { TINY, writeTinyResidualModel } from './helpers/tiny-model.js';
import { SPAM_BERT_ONNX } from './helpers/bundled.js';
import { readModel } from '../src/model/onnx-model.js';
import { indexGraph } from '../src/model/graph.js';
import { randomInputs } from '../ramps/random-input.js';

let dir: string;
let tiny: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'offramp-cli-'));
  tiny = await writeTinyResidualModel(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('offramp (no model needed)', () => {
  test('--help prints the usage with every command and exits 0', async () => {
    const result = await run('--help');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('Usage: offramp');
    for (const command of ['inspect', 'verify', 'prepare']) expect(result.stdout).toContain(command);
  });

  test('inspect --help exits 0 and lists its options', async () => {
    const result = await run('inspect', '--help');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('--min-spacing');
  });

  test('--version prints the package version', async () => {
    const result = await run('--version');
    expect(result.code).toBe(0);
    expect(result.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  test('an unknown command is a usage error: exit code 2', async () => {
    const result = await run('frobnicate');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("offramp: unknown command 'frobnicate'");
  });

  test('a missing model file exits 1 with a message naming the file, without a stack', async () => {
    const missing = join(dir, 'no-such-model.onnx');
    const result = await run('inspect', missing);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`offramp: ${missing}: no such file\n`);
    expect(result.stdout).toBe('');
  });

  test('a file that is not ONNX exits 1 with a message naming the file', async () => {
    const notOnnx = join(dir, 'notes.txt');
    await writeFile(notOnnx, 'these are not the weights you are looking for\n');
    const result = await run('verify', notOnnx);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(notOnnx);
    expect(result.stderr).not.toContain('    at ');
  });

  test('an out-of-range option value is a usage error naming the option', async () => {
    const result = await run('inspect', tiny, '--min-spacing', '1.5');
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--min-spacing');
  });
});

describe('offramp on the hand-made residual model', () => {
  test('inspect --json lists inputs, outputs, compute and the cut points', async () => {
    const result = await run('inspect', tiny, '--json', '--all');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as {
      inputs: { name: string; type: string; dims: unknown[] }[];
      outputs: { name: string; type: string; dims: unknown[] }[];
      flopsPerRow: number;
      candidates: { tensor: string; computeBefore: number }[];
      allCuts: { tensor: string }[];
    };
    expect(report.inputs).toEqual([{ name: TINY.input, type: 'float32', dims: ['batch', 4] }]);
    expect(report.outputs).toEqual([{ name: TINY.output, type: 'float32', dims: ['batch', 3] }]);
    expect(report.flopsPerRow).toBe(256);
    expect(report.allCuts.map((c) => c.tensor)).toEqual([TINY.h1, TINY.r1, TINY.s]);
    expect(report.candidates.map((c) => c.tensor)).toEqual([TINY.h1, TINY.r1, TINY.s]);
  });

  test('inspect prints a table with shape, op and compute before each candidate', async () => {
    const result = await run('inspect', tiny);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^\s*3\s+s\s+\[batch,8\]\s+Add\s+81\.3%$/m);
  });

  test('inspect --min-compute/--max-compute narrow the candidates', async () => {
    const result = await run('inspect', tiny, '--json', '--min-compute', '27%', '--max-compute', '0.5');
    const report = JSON.parse(result.stdout) as { candidates: { tensor: string }[] };
    expect(report.candidates.map((c) => c.tensor)).toEqual([TINY.r1]);
  });

  test('verify --json reports a passing split and exits 0', async () => {
    const result = await run('verify', tiny, '--json', '--cuts', `${TINY.h1},${TINY.s}`, '--cuts', TINY.r1);
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { cuts: string[]; ok: boolean; maxAbsDiff: number; tolerance: number };
    expect(report.cuts).toEqual([TINY.h1, TINY.r1, TINY.s]);
    expect(report.ok).toBe(true);
    expect(report.maxAbsDiff).toBeLessThanOrEqual(report.tolerance);
  });

  test('verify prints the segments and PASS', async () => {
    const result = await run('verify', tiny, '--cuts', TINY.r1);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`${TINY.input} -> ${TINY.r1}`);
    expect(result.stdout).toMatch(/PASS$/m);
  });

  test('verify at a tensor the skip connection bridges is a usage error naming the tensor', async () => {
    const result = await run('verify', tiny, '--cuts', TINY.h2);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`'${TINY.h2}' is a tensor of ${tiny} but not a cut point`);
  });
});

describe('offramp on the bundled text backbone (spam-bert: input_ids + attention_mask)', () => {
  test('inspect lists the hidden states after each attention and FFN residual, the mask as a side tensor', async () => {
    const result = await run('inspect', SPAM_BERT_ONNX, '--json');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as {
      inputs: { name: string }[];
      candidates: { tensor: string; dims: unknown[]; side: { name: string }[] }[];
    };
    expect(report.inputs.map((i) => i.name)).toEqual(['input_ids', 'attention_mask']);
    expect(report.candidates.map((c) => c.tensor)).toEqual([
      '/layers.0/Add_output_0',
      '/layers.0/Add_2_output_0',
      '/layers.1/Add_output_0',
      '/layers.1/Add_2_output_0',
      '/layers.2/Add_output_0',
      '/layers.2/Add_2_output_0',
      '/layers.3/Add_output_0',
    ]);
    expect(report.candidates.every((c) => c.dims.length === 3)).toBe(true);
    expect(report.candidates.slice(0, 6).every((c) => c.side.map((t) => t.name).join() === '/Mul_output_0')).toBe(true);
  });

  test('verify feeds ids and a mask through the segments and passes', async () => {
    const result = await run('verify', SPAM_BERT_ONNX, '--json', '--batch', '3');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { ok: boolean; segments: { inputs: string[] }[] };
    expect(report.ok).toBe(true);
    expect(report.segments).toHaveLength(8);
    expect(report.segments[0]?.inputs).toEqual(['input_ids', 'attention_mask']);
  });

  test('random inputs give a text model ids within its vocabulary and a 0/1 mask that is 0 over padding', async () => {
    const model = await readModel(SPAM_BERT_ONNX);
    const feeds = randomInputs(indexGraph(model.graph!), { batch: 2, other: 8 });
    const ids = Array.from(feeds['input_ids']!.data as BigInt64Array, Number);
    const mask = Array.from(feeds['attention_mask']!.data as BigInt64Array, Number);
    // Row 1 is padded over its last quarter: id 0, mask 0; every other position is a real token.
    expect(mask).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    mask.forEach((m, i) => expect(ids[i]! > 0).toBe(m === 1));
    expect(Math.max(...ids)).toBeLessThan(8192); // the embedding table (and tokenizer) size
  });
});

const resnet18 = zooModel('resnet18');
describe.skipIf(resnet18.missing !== undefined)(titled('offramp on resnet18', resnet18), () => {
  test('inspect --json lists the residual block outputs as candidates', async () => {
    const result = await run('inspect', resnet18.path, '--json');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as {
      inputs: { dims: unknown[] }[];
      candidates: { tensor: string; dims: unknown[] }[];
    };
    expect(report.inputs[0]?.dims).toEqual(['batch', 3, 224, 224]);
    expect(report.candidates.map((c) => c.tensor)).toContain('/layer2/layer2.0/relu_1/Relu_output_0');
  });

  test('verify --json passes at the candidates', async () => {
    const result = await run('verify', resnet18.path, '--json');
    expect(result.code).toBe(0);
    expect((JSON.parse(result.stdout) as { ok: boolean }).ok).toBe(true);
  });
});

const text = zooModel('text_encoder');
test.skipIf(text.missing !== undefined)(
  titled('inspect explains the side tensors of text_encoder under the table', text),
  async () => {
    const result = await run('inspect', text.path);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/\+ \/Equal_output_0 \[batch,seq\] bool/);
    expect(result.stdout).toContain('carried across the cut');
  },
);
