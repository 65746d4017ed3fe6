/**
 * Finds where exit ramps can go: tensors through which every path from the model's inputs to
 * its outputs passes, so that "everything the rest of the model needs" is that tensor — plus,
 * where a model has them, small side tensors that later layers also read (an attention mask
 * built from the token ids, say), which are carried across the cut and reported as such.
 *
 * A tensor t is a cut when the nodes it depends on (its ancestors) hand nothing to the rest
 * of the graph except t and small side tensors. Static nodes (constants) are left out: any
 * segment may carry its own copy.
 */
import { describeValueInfo, ortTypeOfElem, type Dim, type ModelProto } from '../src/model/onnx-model.js';
import { ancestorNodes, indexGraph, type GraphIndex } from '../src/model/graph.js';
import { nodeFlops } from './flops.js';
import { PROBE_SIZES, probeTensors } from './probe.js';
import type { SideTensor, TensorFacts } from '../src/model/split.js';

export interface CutPoint {
  /** The tensor handed across the cut. */
  tensor: string;
  dims: Dim[];
  type: string;
  /** Op type of the node that produces it (e.g. Relu, Add, LayerNormalization). */
  producerOp: string;
  /** Fraction of the model's compute that runs before this cut (0..1). */
  computeBefore: number;
  /** Other tensors the rest of the model still reads after the cut. */
  side: SideTensor[];
  /** Produced by a residual join (Add) or an elementwise op right after one: a block boundary. */
  blockBoundary: boolean;
}

export interface CutOptions {
  /** Skip cuts with less than this share of compute before them (too close to the input). */
  minComputeBefore: number;
  /** Skip cuts with more than this share of compute before them (too close to the output). */
  maxComputeBefore: number;
  /** Minimum share of compute between two reported cuts. */
  minSpacing: number;
  /** A side tensor may hold at most this many elements per row, relative to the main tensor. */
  maxSideRatio: number;
  /** ...and may take at most this share of the model's compute to produce. */
  maxSideCompute: number;
}

export const DEFAULT_CUT_OPTIONS: CutOptions = {
  minComputeBefore: 0.05,
  maxComputeBefore: 0.95,
  minSpacing: 0.03,
  maxSideRatio: 0.25,
  maxSideCompute: 0.01,
};

export interface GraphAnalysis {
  index: GraphIndex;
  tensors: Map<string, TensorFacts>;
  /** Compute of one run at the probe sizes (PROBE_SIZES: batch 2). */
  totalFlops: number;
  /** Compute per row (other symbolic sizes at PROBE_SIZES.other). */
  flopsPerRow: number;
  /** Every cut tensor, before the distance and spacing filters. */
  allCuts: CutPoint[];
  /** The candidates after filtering: where ramps can usefully go. */
  candidates: CutPoint[];
}

const ELEMENTWISE_AFTER_JOIN = new Set([
  'Relu',
  'Clip',
  'Sigmoid',
  'HardSigmoid',
  'HardSwish',
  'Mul',
  'LayerNormalization',
  'Identity',
]);

function isBlockBoundary(index: GraphIndex, tensor: string): boolean {
  const p = index.producer.get(tensor);
  const node = p === undefined ? undefined : index.nodes[p];
  if (!node) return false;
  if (node.opType === 'Add') return true;
  if (ELEMENTWISE_AFTER_JOIN.has(node.opType ?? '')) {
    const q = index.producer.get(node.input?.[0] ?? '');
    return q !== undefined && index.nodes[q]?.opType === 'Add';
  }
  return false;
}

export async function analyseGraph(
  model: ModelProto,
  options: CutOptions = DEFAULT_CUT_OPTIONS,
): Promise<GraphAnalysis> {
  if (!model.graph) throw new Error('model has no graph');
  const index = indexGraph(model.graph);
  const probe = await probeTensors(model, index);
  const flops = index.nodes.map((_, i) => nodeFlops(index, i, probe.concrete));
  const totalFlops = flops.reduce((a, b) => a + b, 0) || 1;
  const outputs = new Set(index.modelOutputs);
  const modelInputs = new Set(index.modelInputs);
  // The probe measures node outputs only; a model input carried as a side tensor is described
  // by its declaration.
  const declaredInputs = new Map<string, { dims: Dim[]; type: string }>();
  for (const info of model.graph.input ?? []) {
    const d = describeValueInfo(info);
    if (modelInputs.has(d.name) && d.dims && d.elemType)
      declaredInputs.set(d.name, { dims: d.dims, type: ortTypeOfElem(d.elemType) });
  }
  const flopsOf = (nodeSet: Set<number>): number => {
    let sum = 0;
    for (const p of nodeSet) sum += flops[p] ?? 0;
    return sum;
  };

  const allCuts: CutPoint[] = [];
  for (const nodeIndex of index.order) {
    if (index.isStatic[nodeIndex]) continue;
    const node = index.nodes[nodeIndex];
    for (const tensor of node?.output ?? []) {
      const facts = probe.tensors.get(tensor);
      if (!tensor || !facts || outputs.has(tensor)) continue;
      const prefix = ancestorNodes(index, tensor);
      // What the rest of the graph reads from the prefix (or from the model inputs directly).
      const crossing = new Set<string>();
      let leaksOutput = false;
      for (const p of prefix) {
        for (const o of index.nodes[p]?.output ?? []) {
          if (outputs.has(o)) leaksOutput = true;
          if ((index.consumers.get(o) ?? []).some((c) => !prefix.has(c) && !index.isStatic[c])) crossing.add(o);
        }
      }
      if (leaksOutput || !crossing.has(tensor)) continue;
      for (let c = 0; c < index.nodes.length; c++) {
        if (prefix.has(c) || index.isStatic[c]) continue;
        for (const name of index.nodeInputs[c] ?? []) if (modelInputs.has(name)) crossing.add(name);
      }
      const side: SideTensor[] = [];
      let sideTooLarge = false;
      for (const name of crossing) {
        if (name === tensor) continue;
        const sideFacts = probe.tensors.get(name);
        const isInput = modelInputs.has(name);
        // A side tensor must be small and cheap: derived from the inputs (a mask), not a skip
        // connection that carries the network's own activations past the cut.
        const small = sideFacts !== undefined && sideFacts.elemsPerRow <= options.maxSideRatio * facts.elemsPerRow;
        if (!isInput && (!small || flopsOf(ancestorNodes(index, name)) > options.maxSideCompute * totalFlops)) {
          sideTooLarge = true;
          break;
        }
        const described = sideFacts ?? declaredInputs.get(name);
        side.push({ name, dims: described?.dims ?? [], type: described?.type ?? 'unknown', modelInput: isInput });
      }
      if (sideTooLarge) continue;
      const before = flopsOf(prefix);
      allCuts.push({
        tensor,
        dims: facts.dims,
        type: facts.type,
        producerOp: node?.opType ?? '',
        computeBefore: before / totalFlops,
        side,
        blockBoundary: isBlockBoundary(index, tensor),
      });
    }
  }
  return {
    index,
    tensors: probe.tensors,
    totalFlops,
    flopsPerRow: totalFlops / PROBE_SIZES.batch,
    allCuts,
    candidates: selectCandidates(allCuts, options),
  };
}

/**
 * Keeps cuts that are far enough from the ends and from each other. Block boundaries (outputs
 * of residual joins) are taken first, because that is where a network's representation is
 * "complete"; plain chain cuts fill the gaps that blocks leave, such as downsampling stages.
 */
export function selectCandidates(cuts: CutPoint[], options: CutOptions): CutPoint[] {
  const inRange = cuts.filter(
    (c) => c.computeBefore >= options.minComputeBefore && c.computeBefore <= options.maxComputeBefore,
  );
  // Among cuts with (nearly) no compute between them, keep the last: it includes the activation.
  const collapsed: CutPoint[] = [];
  for (const cut of [...inRange].sort((a, b) => a.computeBefore - b.computeBefore)) {
    const last = collapsed[collapsed.length - 1];
    if (last && cut.computeBefore - last.computeBefore < 0.002)
      collapsed[collapsed.length - 1] = cut.blockBoundary || !last.blockBoundary ? cut : last;
    else collapsed.push(cut);
  }
  const chosen: CutPoint[] = [];
  const farFromChosen = (cut: CutPoint): boolean =>
    chosen.every((c) => Math.abs(c.computeBefore - cut.computeBefore) >= options.minSpacing);
  for (const cut of collapsed) if (cut.blockBoundary && farFromChosen(cut)) chosen.push(cut);
  for (const cut of collapsed) if (!cut.blockBoundary && farFromChosen(cut)) chosen.push(cut);
  return chosen.sort((a, b) => a.computeBefore - b.computeBefore);
}
