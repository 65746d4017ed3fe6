/**
 * The prepared model directory's manifest.json: what `offramp prepare` (ramps/prepare.ts) writes
 * and the serving runtime loads. It is the contract between the two, so it lives in the model
 * layer both import. One ramp sits after each segment but the last; ramp k reads the tensor
 * that segment k ends at.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { SegmentIo } from './split.js';
import type { SideTensor } from './split.js';
import type { TextSpec } from './text-tokenizer.js';

/** The ramp head kinds a manifest may name (ramps/heads/head-kinds.ts trains them; serving only runs their ONNX files). */
export type HeadKind = 'gap-linear' | 'gap-mlp' | 'quad-mlp' | 'pooler' | 'mlp';

export const MANIFEST_FORMAT = 'offramp.prepared/1';
export const MANIFEST_FILE = 'manifest.json';

export interface HeadTrial {
  kind: HeadKind;
  /** On the calibration rows (used to choose the kind). */
  agreement: number;
  exitFraction: number;
  temperature: number;
}

export interface RampEntry {
  /** Ramp id = index of the segment it follows. */
  id: number;
  tensor: string;
  dims: (number | string)[];
  computeBefore: number;
  side: SideTensor[];
  head: {
    file: string;
    /** `ensemble` is never in a manifest file: it marks a cascade tier in the exits view the server builds (src/model/cascade.ts). */
    kind: HeadKind | 'ensemble';
    features: number;
    hidden: number;
    temperature: number;
    /** Every head kind tried for this position, and how it did. */
    trials: HeadTrial[];
    /** Largest |ONNX head − JS head| probability on evaluation rows: the export is faithful. */
    exportMaxDiff: number;
  };
  /** Measured on the evaluation rows with the exported head. */
  agreement: number;
  soloExit: { budget: number; exitFraction: number; threshold: number };
  /** The same at several budgets, strictest first: what static thresholds are chosen from. */
  soloCurve: { budget: number; exitFraction: number; threshold: number }[];
}

export interface LatencyProfile {
  intraOpThreads: number;
  batchSizes: number[];
  /** segmentMs[k][i]: median ms of segment k at batchSizes[i]. */
  segmentMs: number[][];
  /** headMs[r][i]: median ms of ramp r's head at batchSizes[i]. */
  headMs: number[][];
  /** The unsplit model, for comparison. */
  fullModelMs: number[];
  /**
   * Text models: ids per row at which batchSizes[i] was measured (every row cut or padded to it),
   * the length a batch of that many rows is typically padded to. Absent for fixed-size inputs.
   */
  sequenceLengths?: number[];
  method: string;
  /** A cascade's tiers (tuner/latency-model.ts): only in the exits view the server builds, never in a manifest file. */
  tierMs?: number[][];
}

export interface PreparedManifest {
  format: typeof MANIFEST_FORMAT;
  name: string;
  createdAt: string;
  model: {
    file: string;
    sha256: string;
    inputs: SegmentIo[];
    outputs: SegmentIo[];
    /** The classifier output the ramps imitate. */
    output: string;
    /** True when `output` holds probabilities already; otherwise it holds logits. */
    outputIsProbability: boolean;
    classes: number;
    labels?: string[];
    /** Multiply-adds ×2 and elementwise ops, per row. */
    flopsPerRow: number;
    /**
     * Present for a text model (token ids + attention mask): its tokenizer and input names. The
     * server then also takes raw text (a BYTES input) and pads each batch to its longest row.
     */
    text?: TextSpec;
  };
  segments: {
    index: number;
    file: string;
    nodes: number;
    inputs: SegmentIo[];
    outputs: SegmentIo[];
    endsAt?: string;
  }[];
  ramps: RampEntry[];
  profile: LatencyProfile;
  bootstrap: {
    source: string;
    rows: number;
    trainRows: number;
    calibrationRows: number;
    evaluationRows: number;
    /** Disagreement budget the solo-exit figures use. */
    budget: number;
    seed: number;
  };
}

/**
 * Reads a prepared model directory's manifest. A directory that cannot serve fails with one line
 * naming the path and the cause (missing, not a directory, no manifest, unreadable, not JSON, an
 * unknown format): at startup that line is all an operator sees.
 */
export async function readManifest(dir: string): Promise<PreparedManifest> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new Error(await unreadableManifest(dir, path, err as NodeJS.ErrnoException), { cause: err });
  }
  let manifest: unknown;
  try {
    manifest = JSON.parse(text);
  } catch (err) {
    throw new Error(`${path} is not valid JSON (${(err as Error).message})`, { cause: err });
  }
  // Typed as the one known format, but read from a file: it may hold anything.
  const format: unknown =
    typeof manifest === 'object' && manifest !== null ? (manifest as { format?: unknown }).format : undefined;
  if (format !== MANIFEST_FORMAT)
    throw new Error(`${path}: unknown format ${JSON.stringify(format)} (expected ${MANIFEST_FORMAT})`);
  return manifest as PreparedManifest;
}

/** Why `path` (the manifest in `dir`) could not be read, told from the directory's side when that is the problem. */
async function unreadableManifest(dir: string, path: string, err: NodeJS.ErrnoException): Promise<string> {
  const notPrepared = 'a prepared model directory (made by `offramp prepare`)';
  if (err.code === 'ENOENT') {
    const dirExists = await stat(dir).then(
      () => true,
      () => false,
    );
    return dirExists
      ? `${dir} holds no ${MANIFEST_FILE}: not ${notPrepared}`
      : `${dir} does not exist: expected ${notPrepared}`;
  }
  if (err.code === 'ENOTDIR') return `${dir} is not a directory: expected ${notPrepared}`;
  if (err.code === 'EACCES' || err.code === 'EPERM') return `cannot read ${path}: permission denied`;
  if (err.code === 'EISDIR') return `${path} is a directory, not a file`;
  return `cannot read ${path}: ${err.code ?? err.message}`;
}
