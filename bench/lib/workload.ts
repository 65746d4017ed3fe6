/**
 * What the bench sends to the model it is given (`--model DIR`), decided once from the prepared
 * manifest: an image model (no `model.text`) gets the Fashion-MNIST test images, a text model the
 * SpamAssassin test emails. Everything that differs between the two lives here — the test data
 * and its labels, one request's input, the arguments `offramp record` takes, the latency
 * objective and the rows of the raw onnxruntime loop — so the rest of the bench (schedules,
 * load, figures, oracle, report) handles items by index and never asks which kind they are.
 */
import { join } from 'node:path';
import type { PreparedManifest } from '../../src/model/manifest.js';
import { readNpy } from '../../src/model/npy.js';
import { InputRows, type RowSource } from '../../src/model/input-rows.js';
import { readTextRecords, textLabels, TextRows } from '../../src/model/text-rows.js';
import { TextTokenizer, type TextSpec } from '../../src/model/text-tokenizer.js';
import { atBatch } from '../../tuner/latency-model.js';
import type { RequestInput } from '../load/request-body.js';

export const TEST_IMAGES = 'models/data/fashion-mnist/test-images.npy.gz';
export const TEST_LABELS = 'models/data/fashion-mnist/test-labels.npy.gz';
export const TEST_TEXTS = 'models/data/spam-assassin/test.jsonl.gz';

/**
 * A text model's SLO is this many times its profiled full-model latency at batch 1 (rounded up to
 * 10 ms). The profile's batch 1 is a row of the median length; over half of the test emails are
 * cut at the 256-id maximum, so the median row is a long one already and the 95th percentile at
 * light load is one such row, sometimes two in a batch, plus the serving path and tokenizing:
 * about 2–3× the profile. Five times leaves vanilla a margin at light load while queueing at
 * high load still counts against the objective, as the image model's 50 ms does at its scale.
 */
export const TEXT_SLO_BATCH1_MULTIPLE = 5;

/** The image model's latency objective: the bench's SLO since issue 5, kept so image runs stay comparable. */
export const IMAGE_SLO_MS = 50;

export interface TestItems {
  /** One request's input per test item, in data order (item i = line i of the bodies file). */
  inputs: RequestInput[];
  /** True class per item, as the model's class index. */
  labels: Int32Array;
}

/** The raw loop's inputs (bench/lib/serving-overhead.ts): model rows and the request carrying each. */
export interface OverheadRows {
  rows: RowSource;
  /** Row i as one single-row request's input, what a client sends for it. */
  request(i: number): RequestInput;
  /** A text model's tokenizer and the texts of the rows: tokenizing is timed apart. */
  text?: { tokenizer: TextTokenizer; texts: readonly string[] };
}

export interface Workload {
  kind: 'image' | 'text';
  /** For the report: "Fashion-MNIST test images". */
  description: string;
  /** What one request carries: "image", "email". */
  item: string;
  /** The test data file; the trace cache is keyed on it. */
  data: string;
  /** The latency objective, ms, and how it was chosen. */
  slo: { ms: number; rule: string };
  /**
   * The full plan's warm-up cap, seconds: long enough that the online tuners see a feedback
   * window (1000 rows) before anything is measured, at the rate this model is served at.
   */
  warmupMaxSeconds: number;
  /** Roughly how many requests a second the model is served at here, for the run's time forecast only. */
  roughRps: number;
  /** `offramp record` arguments after `--model DIR`: the data, and for images the labels file. */
  recordArgs: string[];
  testItems(): Promise<TestItems>;
  /** Rows of `data` (default: the test data) for the raw loop; at most `limit`. */
  overheadRows(limit: number, data?: string): Promise<OverheadRows>;
}

/** One email as a request's input: a BYTES tensor of shape [1] holding the text. */
export function textRequest(spec: Pick<TextSpec, 'textInput'>, text: string): RequestInput {
  return { name: spec.textInput, datatype: 'BYTES', shape: [1], data: [text] };
}

/** The text model's SLO from its profile (see TEXT_SLO_BATCH1_MULTIPLE). */
export function textSloMs(manifest: PreparedManifest): number {
  const batch1 = atBatch(manifest.profile, manifest.profile.fullModelMs, 1);
  if (!(batch1 > 0)) throw new Error(`${manifest.name}: the manifest's profile has no full-model latency at batch 1`);
  return Math.ceil((TEXT_SLO_BATCH1_MULTIPLE * batch1) / 10) * 10;
}

function imageWorkload(manifest: PreparedManifest): Workload {
  const spec = manifest.model.inputs[0];
  if (!spec) throw new Error(`${manifest.name}: the manifest declares no input`);
  return {
    kind: 'image',
    description: 'Fashion-MNIST test images',
    item: 'image',
    data: TEST_IMAGES,
    slo: { ms: IMAGE_SLO_MS, rule: `fixed at ${IMAGE_SLO_MS} ms for the image model` },
    warmupMaxSeconds: 10,
    roughRps: 600,
    recordArgs: ['--data', TEST_IMAGES, '--labels', TEST_LABELS],
    /**
     * Pixels go as UINT8 0..255, which the server scales to [0,1] (src/data-plane/convert-input.ts)
     * exactly as `record` does, so served and recorded predictions come from the same input; the
     * bodies are also half the size of FP32 text.
     */
    async testItems() {
      const images = await readNpy(TEST_IMAGES);
      const labels = await readNpy(TEST_LABELS);
      if (images.type !== 'uint8') throw new Error(`${TEST_IMAGES}: expected uint8 pixels, got ${images.type}`);
      const n = images.shape[0] ?? 0;
      const rowShape = images.shape.slice(1);
      const rowSize = rowShape.reduce((a, b) => a * b, 1);
      const inputs = Array.from({ length: n }, (_, i) => ({
        name: spec.name,
        shape: [1, ...rowShape],
        datatype: 'UINT8',
        data: Array.from(images.data.subarray(i * rowSize, (i + 1) * rowSize) as Uint8Array),
      }));
      return { inputs, labels: Int32Array.from(labels.data as ArrayLike<number | bigint>, Number) };
    },
    // The raw loop and its requests carry the model's own FP32 rows (scaled pixels), as before.
    async overheadRows(limit, data = TEST_IMAGES) {
      const rows = new InputRows(await readNpy(data), spec, limit);
      return {
        rows,
        request(i) {
          const t = rows.gather([i % rows.rows]);
          return {
            name: spec.name,
            datatype: spec.type === 'int64' ? 'INT64' : 'FP32',
            shape: t.dims,
            data: Array.from(t.data as Float32Array, Number),
          };
        },
      };
    },
  };
}

function textWorkload(manifest: PreparedManifest, modelDir: string, text: TextSpec): Workload {
  const names = manifest.model.labels;
  const tokenizer = (): Promise<TextTokenizer> => TextTokenizer.load(join(modelDir, text.tokenizer), text.maxLength);
  const sloMs = textSloMs(manifest);
  return {
    kind: 'text',
    description: 'SpamAssassin test emails',
    item: 'email',
    data: TEST_TEXTS,
    slo: {
      ms: sloMs,
      rule:
        `${TEXT_SLO_BATCH1_MULTIPLE} × the profile's full-model latency at batch 1 ` +
        `(${atBatch(manifest.profile, manifest.profile.fullModelMs, 1).toFixed(1)} ms), rounded up to 10 ms`,
    },
    // A text model answers tens of requests a second, not hundreds: a 1000-row window takes ~20 s.
    warmupMaxSeconds: 45,
    roughRps: 50,
    recordArgs: ['--data', TEST_TEXTS],
    async testItems() {
      if (!names) throw new Error(`${manifest.name}: the manifest has no label names to map ${TEST_TEXTS}'s labels to`);
      const records = await readTextRecords(TEST_TEXTS);
      return {
        inputs: records.map((r) => textRequest(text, r.text)),
        labels: textLabels(records, names, TEST_TEXTS),
      };
    },
    async overheadRows(limit, data = TEST_TEXTS) {
      const texts = (await readTextRecords(data)).slice(0, limit).map((r) => r.text);
      const t = await tokenizer();
      return {
        rows: new TextRows(texts, t, text),
        request: (i) => textRequest(text, texts[i % texts.length] as string),
        text: { tokenizer: t, texts },
      };
    },
  };
}

/** The workload for a prepared model: text when its manifest has `model.text`, images otherwise. */
export function workloadFor(manifest: PreparedManifest, modelDir: string): Workload {
  return manifest.model.text ? textWorkload(manifest, modelDir, manifest.model.text) : imageWorkload(manifest);
}
