/**
 * Bring your own text model, end to end through the CLI as a user runs it (docs/byo-text-model.md):
 * an exported Hugging Face BERT classifier — the zoo's `hf_bert`: BertForSequenceClassification's
 * module tree and ONNX signature (input_ids, attention_mask, token_type_ids → logits [batch,3]) with
 * random weights, its WordPiece tokenizer.json, label names and 60 texts (models/recipes/export_zoo.py)
 * — goes through `offramp inspect` → `verify` → `prepare` → a server, which answers raw text and
 * token ids alike.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseServingConfig } from '../src/config/index.js';
import { indexGraph } from '../src/model/graph.js';
import { readManifest, type PreparedManifest } from '../src/model/manifest.js';
import { argmaxRows, softmaxRows } from '../src/model/numeric.js';
import { readModel } from '../src/model/onnx-model.js';
import { OnnxSession } from '../src/model/onnx-session.js';
import { TextTokenizer } from '../src/model/text-tokenizer.js';
import { padTokenRows, tokenRow } from '../src/model/token-batch.js';
import { startServer, type RunningServer } from '../src/server.js';
import { randomInputs } from '../ramps/random-input.js';
import { TEST_SERVER } from './helpers/bundled.js';
import { titled, zooModel } from './helpers/models.js';
import { runCli } from './helpers/run-cli.js';

const bert = zooModel('hf_bert');
/** The files the zoo writes beside hf_bert.onnx: what a user has beside their exported model. */
const beside = (suffix: string): string => bert.path.replace(/\.onnx$/, suffix);
const TOKENIZER = beside('.tokenizer.json');
const LABELS = beside('.labels.txt');
const TEXTS = beside('.texts.jsonl');
const LABEL_NAMES = ['negative', 'neutral', 'positive'];
const HIDDEN = 64;

interface Candidate {
  tensor: string;
  dims: (number | string)[];
  side: { name: string; dims: (number | string)[]; type: string; modelInput: boolean }[];
}

describe.skipIf(bert.missing !== undefined)(titled('bring your own text model: hf_bert', bert), () => {
  test('inspect shows the three Hugging Face inputs, the logits and the cut points', async () => {
    const result = await runCli('inspect', bert.path);
    expect(result.code).toBe(0);
    for (const input of ['input_ids', 'attention_mask', 'token_type_ids'])
      expect(result.stdout).toMatch(new RegExp(`${input}\\s+int64\\s+\\[batch,sequence\\]`));
    expect(result.stdout).toMatch(/logits\s+float32\s+\[batch,3\]/);
    expect(result.stdout).toContain('carried across the cut');
  });

  test('the candidates are encoder hidden states; each that a later layer reads the mask after carries the extended mask', async () => {
    const result = await runCli('inspect', bert.path, '--json');
    expect(result.code).toBe(0);
    const { candidates } = JSON.parse(result.stdout) as { candidates: Candidate[] };
    expect(candidates.length).toBeGreaterThanOrEqual(4);
    for (const cut of candidates) {
      expect(cut.tensor).toMatch(/^\/bert\/encoder\/layer\.\d\//);
      expect(cut.dims).toEqual(['batch', 'seq', HIDDEN]);
    }
    // The mask BERT adds to the attention scores, (1 - attention_mask) * float min, [batch,1,1,seq]:
    // computed once from the input and read by every layer's attention, so every cut before the last
    // layer (3 of 0..3) carries it, and the cuts in the last layer, all after its attention, do not.
    const maskName = candidates[0]?.side[0]?.name;
    expect(maskName).toBeDefined();
    const mask = { name: maskName, dims: ['batch', 1, 1, 'seq'], type: 'float32', modelInput: false };
    const layerOf = (cut: Candidate): number => Number(/layer\.(\d)\//.exec(cut.tensor)?.[1]);
    for (const cut of candidates) {
      expect({ tensor: cut.tensor, side: cut.side }).toEqual({
        tensor: cut.tensor,
        side: layerOf(cut) < 3 ? [mask] : [],
      });
    }
  });

  test('verify splits it at the candidates and the segments reproduce the logits', async () => {
    const result = await runCli('verify', bert.path, '--json');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { ok: boolean; cuts: string[]; maxAbsDiff: number };
    expect(report.cuts.length).toBeGreaterThanOrEqual(4);
    expect(report.ok).toBe(true);
    expect(report.maxAbsDiff).toBeLessThanOrEqual(1e-4);
  });

  test('the random inputs verify feeds give attention_mask 0/1, 0 exactly where input_ids are padding', async () => {
    // Any other value overflows BERT's (1 - mask) * float min to +∞ and every output to NaN.
    const index = indexGraph((await readModel(bert.path)).graph!);
    const feeds = randomInputs(index, { batch: 4, other: 16 }, 7);
    const ids = feeds['input_ids']?.data as BigInt64Array;
    const mask = feeds['attention_mask']?.data as BigInt64Array;
    expect(Array.from(mask, Number)).toEqual(Array.from(ids, (id) => (id === 0n ? 0 : 1)));
    expect(mask.includes(0n)).toBe(true);
  });

  // MERGE: needs `offramp prepare --tokenizer` for JSONL texts (branch text-prepare) and text serving
  // (the lead's engine work: BYTES `text` input, token ids with token_type_ids filled in). Neither is on
  // this branch: remove `.skip` once both are merged. CI fails while these are skipped.
  describe('prepare from JSONL texts, then serve text and token ids', () => {
    let dir: string;
    let manifest: PreparedManifest;
    let server: RunningServer;
    let base: string;
    let tokenizer: TextTokenizer;
    /** Texts of different lengths (one with an accent and an emoji), so that padding matters. */
    const texts = [
      'The delivery was late and the box was broken.',
      'Great coffee, friendly staff — best café in town 🙂 would recommend it again and again!',
    ];

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'offramp-byo-text-'));
      const prepared = await runCli(
        'prepare',
        bert.path,
        '--data',
        TEXTS,
        '--tokenizer',
        TOKENIZER,
        '--labels',
        LABELS,
        '--out',
        join(dir, 'prepared'),
        '--limit',
        '60',
        '--epochs',
        '1',
        '--max-batch',
        '2',
        '--profile-runs',
        '1',
        '--json',
      );
      expect(prepared.stderr).not.toMatch(/^offramp: /m);
      expect(prepared.code).toBe(0);
      manifest = await readManifest(join(dir, 'prepared'));
      tokenizer = await TextTokenizer.load(TOKENIZER);
      const config = parseServingConfig(
        [
          `server: { ${TEST_SERVER} }`,
          'models:',
          // No early exits: every answer is the whole model's, which the tests recompute.
          '  - name: byo',
          `    path: ${JSON.stringify(join(dir, 'prepared'))}`,
          '    tuner: { kind: off }',
          // Every row leaves at the first ramp: the mask is carried to its segment and head.
          '  - name: byo-ramp',
          `    path: ${JSON.stringify(join(dir, 'prepared'))}`,
          '    tuner: { kind: static }',
          `    exits: { thresholds: { ${manifest.ramps[0]?.id ?? 0}: 0 } }`,
        ].join('\n'),
        'byo-text-model.test.yaml',
      );
      server = await startServer(config, { version: 'test', log: () => undefined });
      base = `http://127.0.0.1:${server.httpPort}`;
    }, 300_000);

    afterAll(async () => {
      await server?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    /** The whole exported model's probabilities on the texts, tokenized and padded as a batch. */
    async function wholeModel(): Promise<Float32Array> {
      const session = await OnnxSession.create(bert.path, { intraOpThreads: 1 });
      try {
        const feeds = padTokenRows(
          texts.map((t) => tokenRow(tokenizer.encode(t).ids)),
          manifest.model.text!,
        );
        const logits = (await session.run(feeds))['logits']!.data as Float32Array;
        return softmaxRows(logits, 3);
      } finally {
        await session.release();
      }
    }

    interface Output {
      name: string;
      shape: number[];
      data: (number | string)[];
    }
    async function infer(model: string, inputs: object[]): Promise<{ status: number; outputs: Output[] }> {
      const res = await fetch(`${base}/v2/models/${model}/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ inputs }),
      });
      const body = (await res.json()) as { outputs?: Output[]; error?: string };
      expect(body.error).toBeUndefined();
      return { status: res.status, outputs: body.outputs ?? [] };
    }
    const output = (outputs: Output[], name: string): Output => {
      const found = outputs.find((o) => o.name === name);
      if (!found) throw new Error(`no output '${name}' in ${JSON.stringify(outputs.map((o) => o.name))}`);
      return found;
    };
    const textInput = { name: 'text', datatype: 'BYTES', shape: [2], data: texts };

    test('the prepared manifest names the tokenizer, the three inputs and the labels, and the ramps carry the mask', () => {
      expect(manifest.model.classes).toBe(3);
      expect(manifest.model.labels).toEqual(LABEL_NAMES);
      expect(manifest.model.text).toMatchObject({
        maxLength: 128,
        padId: 0,
        inputs: { ids: 'input_ids', mask: 'attention_mask', typeIds: 'token_type_ids' },
        textInput: 'text',
      });
      expect(manifest.ramps.length).toBeGreaterThan(0);
      expect(manifest.ramps.some((r) => r.side.length > 0)).toBe(true);
    });

    test('text in: 200 with probabilities [2,3], class and label, equal to the whole model on the tokenized texts', async () => {
      const { status, outputs } = await infer('byo', [textInput]);
      expect(status).toBe(200);
      const probabilities = output(outputs, 'probabilities');
      expect(probabilities.shape).toEqual([2, 3]);
      const expected = await wholeModel();
      (probabilities.data as number[]).forEach((p, i) => expect(p).toBeCloseTo(expected[i] as number, 5));
      const classes = output(outputs, 'class').data as number[];
      expect(classes).toEqual([...argmaxRows(expected, 3)]);
      expect(output(outputs, 'label').data).toEqual(classes.map((c) => LABEL_NAMES[c]));
    });

    test('token ids in, without token_type_ids: the same answers as the text (the server fills type ids with 0)', async () => {
      const feeds = padTokenRows(
        texts.map((t) => tokenRow(tokenizer.encode(t).ids)),
        manifest.model.text!,
      );
      const asJson = (name: string) => ({
        name,
        datatype: 'INT64',
        shape: feeds[name]!.dims,
        data: Array.from(feeds[name]!.data as BigInt64Array, Number),
      });
      const byIds = await infer('byo', [asJson('input_ids'), asJson('attention_mask')]);
      const byText = await infer('byo', [textInput]);
      expect(byIds.status).toBe(200);
      expect(output(byIds.outputs, 'probabilities')).toEqual(output(byText.outputs, 'probabilities'));
      expect(output(byIds.outputs, 'label')).toEqual(output(byText.outputs, 'label'));
    });

    test('with the first ramp at threshold 0 every text leaves there, answered with a label', async () => {
      const { status, outputs } = await infer('byo-ramp', [textInput]);
      expect(status).toBe(200);
      expect(output(outputs, 'probabilities').shape).toEqual([2, 3]);
      expect(output(outputs, 'exit_ramp').data).toEqual([manifest.ramps[0]?.id, manifest.ramps[0]?.id]);
      for (const label of output(outputs, 'label').data) expect(LABEL_NAMES).toContain(label);
    });
  });
});
