/**
 * `offramp prepare`: from an ONNX classifier and unlabelled bootstrap inputs to a prepared model
 * directory — segments split at every candidate cut, one trained and calibrated ramp head per
 * candidate, a measured latency profile, and manifest.json tying them together. Bootstrap inputs
 * are a .npy array (a single-input model: images, or fixed-length ids) or, for a text model (token
 * ids + attention mask), JSON Lines texts and the model's tokenizer.json, which is copied into the
 * directory so that serving tokenizes as prepare did.
 *
 *   1. analyse the graph, split at all candidates (serving starts on these segments; once a ramp
 *      set is in use, the executor re-splits the backbone at just the active ramps in the
 *      background: src/engine/executor/backbone-runner.ts)
 *   2. run the frozen backbone once over the bootstrap rows, caching pooled features at every cut
 *      and the backbone's own output distribution (the heads' targets)
 *   3. per candidate and head kind: train on the train rows, fit a temperature on the
 *      calibration rows, keep the kind that exits most rows within the budget
 *   4. export each head to ONNX and measure it on evaluation rows through onnxruntime
 *   5. profile segments, heads and the whole model at every batch size
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { analyseGraph, type CutPoint } from './cut-points.js';
import { encodeModel, readModel, type ModelProto } from '../src/model/onnx-model.js';
import { OnnxSession, servingSessionOptions } from '../src/model/onnx-session.js';
import type { HostTensor } from '../src/model/tensor.js';
import { readNpy } from '../src/model/npy.js';
import { splitModel, type SegmentIo } from '../src/model/split.js';
import { SegmentChain } from '../src/model/segment-chain.js';
import { extractFeatures, featureCount, headKindsForRank } from './heads/head-kinds.js';
import type { HeadKind } from '../src/model/manifest.js';
import { DEFAULT_TRAIN_OPTIONS, headLogits, trainHead } from './heads/train-head.js';
import { buildHeadModel, HEAD_OUTPUT, type HeadWeights } from './heads/head-onnx.js';
import { argmaxRows, seededRandom, softmaxRows } from '../src/model/numeric.js';
import { fitTemperature, soloExit } from './heads/calibration.js';
import { profileLatency } from './latency-profile.js';
import {
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  type HeadTrial,
  type PreparedManifest,
  type RampEntry,
} from '../src/model/manifest.js';
import { InputRows, type RowSource } from '../src/model/input-rows.js';
import { readTextRecords, TextRows } from '../src/model/text-rows.js';
import { TEXT_INPUT_NAME, TextTokenizer, type TextSpec } from '../src/model/text-tokenizer.js';
import { modelInputSpecs } from './random-input.js';
import { ortTypeOfElem } from '../src/model/onnx-model.js';
import { isTextData, textInputsOf, type DeclaredInput } from './text-inputs.js';
import { feedsAtLength, typicalBatchLengths } from './latency-profile.js';

export interface PrepareOptions {
  modelPath: string;
  /** Bootstrap inputs: .npy/.npy.gz rows, or JSON Lines texts (.jsonl/.jsonl.gz) with `tokenizerPath`. */
  dataPath: string;
  /** A text model's tokenizer.json (needed with JSON Lines data). */
  tokenizerPath?: string;
  /** Longest text row in ids; default: the tokenizer file's truncation length, else 512. */
  maxLength?: number;
  outDir: string;
  /** Use only the first N rows of the data (a quick run). */
  limit?: number;
  /** Largest batch size to profile (1…maxBatch). */
  maxBatch: number;
  /** Restrict head kinds (default: every kind that fits the tensor's rank). */
  headKinds?: HeadKind[];
  /** Disagreement budget for the solo-exit figures (default 1 %). */
  budget: number;
  epochs: number;
  hidden: number;
  seed: number;
  /** Threads onnxruntime may use per operator while profiling: what serving will use. */
  intraOpThreads: number;
  /** Output to imitate; default: the model's first output. */
  output?: string;
  labels?: string[];
  name?: string;
  /** Profiling effort: timed runs per measurement. */
  profileRuns: number;
  onProgress?: (event: PrepareProgress) => void;
}

export interface PrepareProgress {
  phase: 'analyse' | 'features' | 'train' | 'evaluate' | 'profile' | 'write';
  done: number;
  total: number;
  detail?: string;
}

export const DEFAULT_PREPARE_OPTIONS = {
  maxBatch: 16,
  budget: 0.01,
  epochs: DEFAULT_TRAIN_OPTIONS.epochs,
  hidden: DEFAULT_TRAIN_OPTIONS.hidden,
  seed: 1,
  intraOpThreads: 2,
  profileRuns: 15,
} as const;

const FEATURE_BATCH = 64;

/** The tokenizer's file name inside a prepared directory (`model.text.tokenizer`). */
export const TOKENIZER_FILE = 'tokenizer.json';

/**
 * The tokenizer of text data, undefined for .npy data.
 * @throws Error when texts come without a tokenizer or a tokenizer with .npy data.
 */
function textTokenizer(options: PrepareOptions): string | undefined {
  const text = isTextData(options.dataPath);
  if (text && !options.tokenizerPath)
    throw new Error(
      `${options.dataPath} holds texts: prepare needs the model's tokenizer (--tokenizer tokenizer.json)`,
    );
  if (!text && options.tokenizerPath)
    throw new Error(`--tokenizer is for text data (.jsonl or .jsonl.gz); ${options.dataPath} is not`);
  return options.tokenizerPath;
}

/** The rows prepare trains and measures on, and for a text model what the manifest records of it. */
interface Bootstrap {
  rows: RowSource;
  /** Per row, its length in ids (text) — the profile pads batches to typical lengths from these. */
  lengths?: number[];
  text?: TextSpec;
}

/**
 * Reads the bootstrap data as rows of this model's inputs.
 * @throws Error in one line naming the file and the cause when data, tokenizer and model do not fit together.
 */
async function loadBootstrap(
  options: PrepareOptions,
  inputs: DeclaredInput[],
  inputSpec: SegmentIo | undefined,
): Promise<Bootstrap> {
  const textInputs = (): TextSpec['inputs'] | undefined => textInputsOf(inputs, options.modelPath);
  if (!isTextData(options.dataPath)) {
    if (inputs.length !== 1 || !inputSpec) {
      const names = inputs.map((i) => i.name).join(', ');
      throw new Error(
        textInputs()
          ? `${options.modelPath} is a text model (${names}): give its bootstrap texts as JSON Lines (.jsonl or .jsonl.gz) with --tokenizer`
          : `${options.modelPath} has ${inputs.length} inputs (${names}); .npy data feeds single-input models only`,
      );
    }
    return { rows: new InputRows(await readNpy(options.dataPath), inputSpec, options.limit) };
  }
  const ids = textInputs();
  if (!ids)
    throw new Error(
      `${options.modelPath} has no token ids input ('input_ids', or one int64 [batch, sequence] input named *ids*) for text data`,
    );
  const tokenizer = await TextTokenizer.load(textTokenizer(options) as string, options.maxLength);
  const text: TextSpec = {
    tokenizer: TOKENIZER_FILE,
    maxLength: tokenizer.maxLength,
    padId: tokenizer.padId,
    inputs: ids,
    textInput: TEXT_INPUT_NAME,
  };
  const records = await readTextRecords(options.dataPath);
  const rows = new TextRows(
    records.map((r) => r.text),
    tokenizer,
    text,
    options.limit,
  );
  return { rows, lengths: Array.from({ length: rows.rows }, (_, i) => rows.lengthOf(i)), text };
}

/**
 * A text model must take rows as long as its tokenizer makes them; a model with fewer position
 * embeddings than the tokenizer's maximum fails on the first long text, so find out now.
 */
async function checkMaxLength(session: OnnxSession, text: TextSpec, modelPath: string): Promise<void> {
  const length = text.maxLength;
  const row = (value: bigint): HostTensor => ({
    type: 'int64',
    data: new BigInt64Array(length).fill(value),
    dims: [1, length],
  });
  const feeds: Record<string, HostTensor> = { [text.inputs.ids]: row(BigInt(text.padId)), [text.inputs.mask]: row(1n) };
  if (text.inputs.typeIds) feeds[text.inputs.typeIds] = row(0n);
  try {
    await session.run(feeds);
  } catch (err) {
    const cause = ((err as Error).message.split('\n')[0] ?? '').trim();
    throw new Error(
      `${modelPath} cannot run a row of ${length} token ids, the tokenizer's maximum length (${cause}); ` +
        'if the model has fewer position embeddings, pass a smaller --max-length',
      { cause: err },
    );
  }
}

/** Budgets at which each ramp's solo exit is recorded (static thresholds split a budget among ramps). */
export const SOLO_CURVE_BUDGETS = [0.001, 0.002, 0.0025, 0.0033, 0.005, 0.01, 0.02, 0.05];

/** JSON has no Infinity: a ramp that can never exit within budget gets a threshold above any confidence. */
function finiteThreshold(t: number): number {
  return Number.isFinite(t) ? t : 1.01;
}

function range(start: number, end: number): number[] {
  return Array.from({ length: Math.max(0, end - start) }, (_, i) => start + i);
}

function featureFamily(kind: HeadKind): string {
  return kind === 'gap-linear' || kind === 'gap-mlp' ? 'gap' : kind;
}

function rowsOf(values: Float32Array, width: number, indices: number[]): Float32Array {
  const out = new Float32Array(indices.length * width);
  indices.forEach((r, i) => out.set(values.subarray(r * width, (r + 1) * width), i * width));
  return out;
}

function looksLikeProbabilities(values: Float32Array, classes: number): boolean {
  for (let r = 0; r < Math.min(values.length / classes, 32); r++) {
    let sum = 0;
    for (let c = 0; c < classes; c++) {
      const v = values[r * classes + c] as number;
      if (v < 0 || v > 1) return false;
      sum += v;
    }
    if (Math.abs(sum - 1) > 1e-3) return false;
  }
  return true;
}

export async function prepareModel(options: PrepareOptions): Promise<PreparedManifest> {
  const progress = options.onProgress ?? (() => undefined);
  textTokenizer(options); // a mismatch of data and tokenizer fails before the model is analysed
  const model: ModelProto = await readModel(options.modelPath);
  progress({ phase: 'analyse', done: 0, total: 1, detail: 'finding cut points' });
  const analysis = await analyseGraph(model);
  const candidates: CutPoint[] = analysis.candidates.filter(
    (c) => c.type === 'float32' && headKindsForRank(c.dims.length).length > 0,
  );
  if (candidates.length === 0) throw new Error('no usable ramp positions found (see `offramp inspect`)');
  const segments = splitModel(
    model,
    analysis.index,
    candidates.map((c) => c.tensor),
    analysis.tensors,
  );
  progress({ phase: 'analyse', done: 1, total: 1, detail: `${candidates.length} candidates` });

  const finalSegment = segments[segments.length - 1];
  // Every model input, as the segment reading it declares it (as the model declares it if none does).
  const segmentInputs = segments.flatMap((s) => s.inputs);
  const modelInputs: SegmentIo[] = modelInputSpecs(analysis.index).map(
    (i) =>
      segmentInputs.find((io) => io.name === i.name) ?? { name: i.name, type: ortTypeOfElem(i.elemType), dims: i.dims },
  );
  const outputName = options.output ?? analysis.index.modelOutputs[0] ?? '';
  if (!analysis.index.modelOutputs.includes(outputName)) throw new Error(`model has no output '${outputName}'`);

  const bootstrap = await loadBootstrap(options, modelInputs, modelInputs.length === 1 ? modelInputs[0] : undefined);
  const rows = bootstrap.rows;
  if (rows.rows < 20) throw new Error(`need at least 20 bootstrap rows, got ${rows.rows}`);
  const fullSession = await OnnxSession.create(encodeModel(model), servingSessionOptions(options.intraOpThreads));
  if (bootstrap.text) {
    await checkMaxLength(fullSession, bootstrap.text, options.modelPath).catch(async (err: unknown) => {
      await fullSession.release();
      throw err;
    });
  }

  // --- 2. one pass of the frozen backbone: pooled features at every cut, final outputs ---
  const chain = await SegmentChain.load(segments, options.intraOpThreads);
  const kindsPer = candidates.map((c) =>
    headKindsForRank(c.dims.length).filter((k) => !options.headKinds || options.headKinds.includes(k)),
  );
  if (kindsPer.some((k) => k.length === 0))
    throw new Error(`none of the requested head kinds (${options.headKinds?.join(', ')}) fits every candidate`);
  const features = candidates.map(() => new Map<string, Float32Array[]>());
  const featureWidth = candidates.map(() => new Map<string, number>());
  const finalParts: Float32Array[] = [];
  let classes = 0;
  for (let start = 0; start < rows.rows; start += FEATURE_BATCH) {
    const batch = range(start, Math.min(rows.rows, start + FEATURE_BATCH));
    const pool = await chain.run(rows.feeds(batch), (k, p) => {
      const cut = candidates[k];
      if (!cut) return;
      const tensor = p[cut.tensor] as HostTensor;
      const done = new Set<string>(); // gap-linear and gap-mlp share one family of features
      for (const kind of kindsPer[k] ?? []) {
        const family = featureFamily(kind);
        if (done.has(family)) continue;
        done.add(family);
        const list = features[k]?.get(family) ?? [];
        list.push(extractFeatures(kind, tensor));
        features[k]?.set(family, list);
        featureWidth[k]?.set(family, featureCount(kind, tensor.dims));
      }
    });
    const out = pool[outputName] as HostTensor;
    if (out.dims.length !== 2)
      throw new Error(`output '${outputName}' has shape [${out.dims.join(',')}]; prepare needs [batch, classes]`);
    classes = out.dims[1] as number;
    finalParts.push(Float32Array.from(out.data as Float32Array));
    progress({ phase: 'features', done: (batch[batch.length - 1] as number) + 1, total: rows.rows });
  }
  await chain.release();
  const concat = (parts: Float32Array[]): Float32Array => {
    const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
    let offset = 0;
    for (const p of parts) {
      out.set(p, offset);
      offset += p.length;
    }
    return out;
  };
  const finalOut = concat(finalParts);
  const outputIsProbability = looksLikeProbabilities(finalOut, classes);
  const finalProbs = outputIsProbability ? finalOut : softmaxRows(finalOut, classes);
  const finalArgmax = argmaxRows(finalOut, classes);

  // --- split rows: train / calibration (temperature, kind choice) / evaluation (reported figures) ---
  const random = seededRandom(options.seed);
  const order = range(0, rows.rows);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j] as number, order[i] as number];
  }
  const nCal = Math.max(5, Math.round(rows.rows * 0.15));
  const nEval = Math.max(5, Math.round(rows.rows * 0.15));
  const trainIdx = order.slice(0, rows.rows - nCal - nEval);
  const calIdx = order.slice(rows.rows - nCal - nEval, rows.rows - nEval);
  const evalIdx = order.slice(rows.rows - nEval);
  const calArgmax = Int32Array.from(calIdx, (r) => finalArgmax[r] as number);

  // --- 3. train every kind per candidate; keep the one that exits most within the budget ---
  const totalTrials = kindsPer.reduce((a, k) => a + k.length, 0);
  let trialsDone = 0;
  const chosen: { weights: HeadWeights; trials: HeadTrial[] }[] = [];
  for (let k = 0; k < candidates.length; k++) {
    const trials: HeadTrial[] = [];
    let best: { weights: HeadWeights; exit: number; agreement: number } | undefined;
    for (const kind of kindsPer[k] ?? []) {
      const family = featureFamily(kind);
      const all = concat(features[k]?.get(family) ?? []);
      const width = featureWidth[k]?.get(family) ?? 0;
      const weights = await trainHead(
        {
          features: rowsOf(all, width, trainIdx),
          targets: rowsOf(finalProbs, classes, trainIdx),
          rows: trainIdx.length,
          featureCount: width,
          classes,
        },
        { ...DEFAULT_TRAIN_OPTIONS, kind, epochs: options.epochs, hidden: options.hidden, seed: options.seed + k },
      );
      const calLogits = headLogits(weights, rowsOf(all, width, calIdx), calIdx.length);
      weights.temperature = fitTemperature(calLogits, calArgmax, classes);
      const solo = soloExit(softmaxRows(calLogits, classes, weights.temperature), calArgmax, classes, options.budget);
      trials.push({
        kind,
        agreement: solo.agreement,
        exitFraction: solo.exitFraction,
        temperature: weights.temperature,
      });
      const better =
        !best ||
        solo.exitFraction > best.exit + 1e-9 ||
        (Math.abs(solo.exitFraction - best.exit) <= 1e-9 && solo.agreement > best.agreement);
      if (better) best = { weights, exit: solo.exitFraction, agreement: solo.agreement };
      progress({
        phase: 'train',
        done: ++trialsDone,
        total: totalTrials,
        detail: `ramp ${k} ${kind}: agreement ${(solo.agreement * 100).toFixed(1)}%`,
      });
    }
    chosen.push({ weights: (best as { weights: HeadWeights }).weights, trials });
  }

  // --- 4. export heads, then measure them through onnxruntime on the evaluation rows ---
  await mkdir(join(options.outDir, 'segments'), { recursive: true });
  await mkdir(join(options.outDir, 'heads'), { recursive: true });
  const opset = model.opsetImport?.filter((o) => !o.domain) ?? [{ domain: '', version: 17 }];
  const headModels = chosen.map((c, k) => {
    const cut = candidates[k] as CutPoint;
    return encodeModel(buildHeadModel(c.weights, { name: cut.tensor, dims: cut.dims }, opset));
  });
  const headSessions = await Promise.all(
    headModels.map((bytes) => OnnxSession.create(bytes, servingSessionOptions(options.intraOpThreads))),
  );
  const evalChain = await SegmentChain.load(segments, options.intraOpThreads);
  const evalProbs = candidates.map(() => [] as Float32Array[]);
  const exportDiff = candidates.map(() => 0);
  for (let start = 0; start < evalIdx.length; start += FEATURE_BATCH) {
    const batch = evalIdx.slice(start, start + FEATURE_BATCH);
    await evalChain.run(rows.feeds(batch), async (k, p) => {
      const cut = candidates[k];
      const session = headSessions[k];
      if (!cut || !session) return;
      const tensor = p[cut.tensor] as HostTensor;
      const probs = (await session.run({ [cut.tensor]: tensor }))[HEAD_OUTPUT]?.data as Float32Array;
      evalProbs[k]?.push(Float32Array.from(probs));
      // The ONNX head must compute what the JS head computed during training and calibration.
      const weights = (chosen[k] as { weights: HeadWeights }).weights;
      const js = softmaxRows(
        headLogits(weights, extractFeatures(weights.kind, tensor), batch.length),
        classes,
        weights.temperature,
      );
      for (let i = 0; i < js.length; i++)
        exportDiff[k] = Math.max(exportDiff[k] as number, Math.abs((js[i] as number) - (probs[i] as number)));
    });
    progress({ phase: 'evaluate', done: Math.min(evalIdx.length, start + FEATURE_BATCH), total: evalIdx.length });
  }
  await evalChain.release();
  const evalArgmax = Int32Array.from(evalIdx, (r) => finalArgmax[r] as number);

  // --- 5. latency profile with the session settings serving uses ---
  const segmentSessions = await Promise.all(
    segments.map((s) => OnnxSession.create(encodeModel(s.model), servingSessionOptions(options.intraOpThreads))),
  );
  const batchSizes = range(1, options.maxBatch + 1);
  // Text rows vary in length and a transformer's cost grows with it, while serving pads each batch
  // to its longest row. The latency model reads one figure per batch size, so each batch size is
  // measured at the length a batch of that many bootstrap rows is typically padded to, every row
  // cut or padded to it (typicalBatchLengths); the lengths go into the profile.
  const lengths = bootstrap.lengths ? typicalBatchLengths(bootstrap.lengths, batchSizes) : undefined;
  const text = bootstrap.text;
  const profileFeeds = (batch: number): Record<string, HostTensor> => {
    const feeds = rows.feeds(range(0, batch).map((i) => i % rows.rows));
    const length = lengths?.[batchSizes.indexOf(batch)];
    return text && length !== undefined ? feedsAtLength(feeds, text, length) : feeds;
  };
  const profile = await profileLatency(
    {
      segments: segments.map((s, k) => ({
        session: segmentSessions[k] as OnnxSession,
        inputs: s.inputs.map((i) => i.name),
        outputs: s.outputs.map((o) => o.name),
      })),
      heads: candidates.map((c, r) => ({ session: headSessions[r] as OnnxSession, tensor: c.tensor })),
      full: fullSession,
    },
    profileFeeds,
    {
      batchSizes,
      intraOpThreads: options.intraOpThreads,
      maxRuns: options.profileRuns,
      minRuns: Math.min(5, options.profileRuns),
      budgetMs: 100,
      rounds: 3,
      ...(lengths ? { sequenceLengths: lengths } : {}),
    },
    (done, total) => progress({ phase: 'profile', done, total, detail: `${done}/${total}` }),
  );
  for (const s of [...segmentSessions, ...headSessions, fullSession]) await s.release();

  // --- write the directory ---
  progress({ phase: 'write', done: 0, total: 1 });
  const modelBytes = await readFile(options.modelPath);
  await writeFile(join(options.outDir, 'model.onnx'), modelBytes);
  if (options.tokenizerPath && text)
    await writeFile(join(options.outDir, TOKENIZER_FILE), await readFile(options.tokenizerPath));
  const segmentEntries = [];
  for (const s of segments) {
    const file = `segments/segment-${s.index}.onnx`;
    await writeFile(join(options.outDir, file), encodeModel(s.model));
    segmentEntries.push({
      index: s.index,
      file,
      nodes: s.nodeCount,
      inputs: s.inputs,
      outputs: s.outputs,
      ...(s.endsAt ? { endsAt: s.endsAt } : {}),
    });
  }
  const ramps: RampEntry[] = [];
  for (let k = 0; k < candidates.length; k++) {
    const cut = candidates[k] as CutPoint;
    const { weights, trials } = chosen[k] as { weights: HeadWeights; trials: HeadTrial[] };
    const file = `heads/head-${k}.onnx`;
    await writeFile(join(options.outDir, file), headModels[k] as Uint8Array);
    const probs = concat(evalProbs[k] ?? []);
    const solo = soloExit(probs, evalArgmax, classes, options.budget);
    ramps.push({
      id: k,
      tensor: cut.tensor,
      dims: cut.dims,
      computeBefore: cut.computeBefore,
      side: cut.side,
      head: {
        file,
        kind: weights.kind,
        features: weights.featureCount,
        hidden: weights.hidden,
        temperature: weights.temperature,
        trials,
        exportMaxDiff: exportDiff[k] as number,
      },
      agreement: solo.agreement,
      soloExit: { budget: options.budget, exitFraction: solo.exitFraction, threshold: finiteThreshold(solo.threshold) },
      soloCurve: SOLO_CURVE_BUDGETS.map((budget) => {
        const point = soloExit(probs, evalArgmax, classes, budget);
        return { budget, exitFraction: point.exitFraction, threshold: finiteThreshold(point.threshold) };
      }),
    });
  }
  const finalOutputs = finalSegment?.outputs ?? [];
  const manifest: PreparedManifest = {
    format: MANIFEST_FORMAT,
    name: options.name ?? basename(options.modelPath).replace(/\.onnx$/, ''),
    createdAt: new Date().toISOString(),
    model: {
      file: 'model.onnx',
      sha256: createHash('sha256').update(modelBytes).digest('hex'),
      inputs: modelInputs,
      outputs: finalOutputs,
      output: outputName,
      outputIsProbability,
      classes,
      ...(options.labels ? { labels: options.labels } : {}),
      flopsPerRow: analysis.flopsPerRow,
      ...(text ? { text } : {}),
    },
    segments: segmentEntries,
    ramps,
    profile,
    bootstrap: {
      source: basename(options.dataPath),
      rows: rows.rows,
      trainRows: trainIdx.length,
      calibrationRows: calIdx.length,
      evaluationRows: evalIdx.length,
      budget: options.budget,
      seed: options.seed,
    },
  };
  await writeFile(join(options.outDir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + '\n');
  progress({ phase: 'write', done: 1, total: 1 });
  return manifest;
}
