/**
 * Checks that split execution reproduces the model: the same random input through the whole
 * model and through the chain of segments must give outputs within a tolerance (1e-4).
 */
import type { ModelProto } from '../src/model/onnx-model.js';
import { OnnxSession } from '../src/model/onnx-session.js';
import type { HostTensor } from '../src/model/tensor.js';
import { analyseGraph, type GraphAnalysis } from './cut-points.js';
import { randomInputs } from './random-input.js';
import { splitModel } from '../src/model/split.js';
import { SegmentChain } from '../src/model/segment-chain.js';
import { encodeModel } from '../src/model/onnx-model.js';

export const VERIFY_TOLERANCE = 1e-4;

export interface VerifyReport {
  cuts: string[];
  segments: { index: number; nodes: number; inputs: string[]; outputs: string[] }[];
  batch: number;
  /** Largest |monolithic − segmented| over all model outputs. */
  maxAbsDiff: number;
  perOutput: Record<string, number>;
  tolerance: number;
  ok: boolean;
}

export function maxAbsDifference(a: HostTensor, b: HostTensor): number {
  if (a.data.length !== b.data.length) return Number.POSITIVE_INFINITY;
  let worst = 0;
  for (let i = 0; i < a.data.length; i++) {
    const d = Math.abs(Number(a.data[i]) - Number(b.data[i]));
    if (Number.isNaN(d)) return Number.POSITIVE_INFINITY;
    if (d > worst) worst = d;
  }
  return worst;
}

export async function verifySplit(
  model: ModelProto,
  options: {
    cuts?: string[] | undefined;
    batch?: number | undefined;
    seed?: number | undefined;
    analysis?: GraphAnalysis | undefined;
  } = {},
): Promise<VerifyReport> {
  const analysis = options.analysis ?? (await analyseGraph(model));
  const known = new Set(analysis.allCuts.map((c) => c.tensor));
  const cuts = options.cuts ?? analysis.candidates.map((c) => c.tensor);
  for (const cut of cuts) {
    if (!known.has(cut)) throw new Error(`'${cut}' is not a cut point of this model (see 'offramp inspect --all')`);
  }
  // Order the requested cuts as they occur in the model.
  const position = new Map(analysis.allCuts.map((c, i) => [c.tensor, i]));
  const ordered = [...new Set(cuts)].sort((a, b) => (position.get(a) ?? 0) - (position.get(b) ?? 0));
  const segments = splitModel(model, analysis.index, ordered, analysis.tensors);

  const batch = options.batch ?? 2;
  const inputs = randomInputs(analysis.index, { batch, other: 16 }, options.seed ?? 7);
  const whole = await OnnxSession.create(encodeModel(model));
  const chain = await SegmentChain.load(segments);
  try {
    const expected = await whole.run(inputs);
    const pool = await chain.run(inputs);
    const perOutput: Record<string, number> = {};
    let maxAbsDiff = 0;
    for (const [name, tensor] of Object.entries(expected)) {
      const got = pool[name];
      const diff = got ? maxAbsDifference(tensor, got) : Number.POSITIVE_INFINITY;
      perOutput[name] = diff;
      maxAbsDiff = Math.max(maxAbsDiff, diff);
    }
    return {
      cuts: ordered,
      segments: segments.map((s) => ({
        index: s.index,
        nodes: s.nodeCount,
        inputs: s.inputs.map((i) => i.name),
        outputs: s.outputs.map((o) => o.name),
      })),
      batch,
      maxAbsDiff,
      perOutput,
      tolerance: VERIFY_TOLERANCE,
      ok: maxAbsDiff <= VERIFY_TOLERANCE,
    };
  } finally {
    await whole.release();
    await chain.release();
  }
}
