/**
 * Splits a model at chosen cut points into segments: each segment is a self-contained ONNX
 * model holding the nodes between two consecutive cuts, its own copies of the constants it
 * uses, and the initializers it reads. Run in order, feeding each segment the tensors it names
 * as inputs (from the caller's inputs or from earlier segments), they reproduce the model.
 * `offramp prepare` splits at every candidate cut; the engine re-splits at the active ramps
 * (split-at-ramps.ts).
 */
import {
  type Dim,
  describeValueInfo,
  elemOfOrtType,
  ortTypeOfElem,
  makeValueInfo,
  type ModelProto,
  onnx,
  type ValueInfoProto,
} from './onnx-model.js';
import { ancestorNodes, type GraphIndex, staticSupport } from './graph.js';

export interface SegmentIo {
  name: string;
  type: string;
  dims: Dim[];
}

/** What splitting needs to know of a tensor: measured by ramps/probe.ts, or read back from a manifest. */
export interface TensorFacts {
  name: string;
  type: string;
  /** Shape with symbolic names where the size follows the input sizes. */
  dims: Dim[];
  /** Element count at batch 1 (and the probe's other sizes), for comparing tensor sizes. */
  elemsPerRow: number;
}

/** A tensor the rest of the model still reads after a cut, besides the cut tensor itself (an attention mask, say). */
export interface SideTensor {
  name: string;
  dims: Dim[];
  type: string;
  /** True when it is one of the model's own inputs rather than something computed. */
  modelInput: boolean;
}

export interface Segment {
  /** 0-based position in the chain. */
  index: number;
  /** The cut tensor this segment ends at; undefined for the last segment (it ends at the model outputs). */
  endsAt: string | undefined;
  inputs: SegmentIo[];
  outputs: SegmentIo[];
  nodeCount: number;
  model: onnx.IModelProto;
}

function ioOf(name: string, facts: Map<string, TensorFacts>, declared: Map<string, ValueInfoProto>): SegmentIo {
  const info = declared.get(name);
  if (info?.type?.tensorType?.elemType) {
    const described = describeValueInfo(info);
    if (described.dims) return { name, type: ortTypeOfElem(described.elemType), dims: described.dims };
  }
  const f = facts.get(name);
  if (!f) throw new Error(`no type or shape known for tensor '${name}'`);
  return { name, type: f.type, dims: f.dims };
}

/**
 * @param cuts tensor names, in execution order; each must be a cut point of the graph.
 * @param modelInputFacts element types for the model inputs (from their declarations).
 */
export function splitModel(
  model: ModelProto,
  index: GraphIndex,
  cuts: string[],
  facts: Map<string, TensorFacts>,
): Segment[] {
  const graph = model.graph;
  if (!graph) throw new Error('model has no graph');
  const declared = new Map<string, ValueInfoProto>();
  for (const v of [...(graph.input ?? []), ...(graph.output ?? [])]) declared.set(v.name ?? '', v);

  // Node sets per segment: the ancestors of each cut, minus what earlier segments already ran.
  const assigned = new Set<number>();
  const nodeSets: number[][] = [];
  for (const cut of cuts) {
    if (!index.producer.has(cut)) throw new Error(`'${cut}' is not produced by any node of the model`);
    const prefix = ancestorNodes(index, cut);
    for (const n of assigned) {
      if (!prefix.has(n))
        throw new Error(`cut points are out of order or not cuts: '${cut}' does not follow the previous cut`);
    }
    nodeSets.push([...prefix].filter((n) => !assigned.has(n)));
    for (const n of prefix) assigned.add(n);
  }
  nodeSets.push(index.order.filter((n) => !assigned.has(n) && !index.isStatic[n]));

  const segmentOf = new Map<number, number>();
  nodeSets.forEach((set, k) => set.forEach((n) => segmentOf.set(n, k)));
  const modelOutputs = new Set(index.modelOutputs);
  const initializerByName = new Map((graph.initializer ?? []).map((t) => [t.name ?? '', t]));

  return nodeSets.map((set, k): Segment => {
    const ordered = [...set].sort((a, b) => (index.rank[a] ?? 0) - (index.rank[b] ?? 0));
    const staticNodes = staticSupport(index, ordered);
    const allNodes = [...staticNodes, ...ordered];
    const produced = new Set(allNodes.flatMap((n) => index.nodes[n]?.output ?? []));

    const inputs: string[] = [];
    const usedInitializers = new Set<string>();
    for (const n of allNodes) {
      for (const name of index.nodeInputs[n] ?? []) {
        if (produced.has(name)) continue;
        if (index.initializers.has(name)) usedInitializers.add(name);
        else if (!inputs.includes(name)) inputs.push(name);
      }
    }
    const outputs: string[] = [];
    for (const n of ordered) {
      for (const o of index.nodes[n]?.output ?? []) {
        if (!o) continue;
        const readLater = (index.consumers.get(o) ?? []).some((c) => (segmentOf.get(c) ?? -1) > k);
        if ((readLater || modelOutputs.has(o)) && !outputs.includes(o)) outputs.push(o);
      }
    }
    const inputIo = inputs.map((name) => ioOf(name, facts, declared));
    const outputIo = outputs.map((name) => ioOf(name, facts, declared));
    const segmentGraph: onnx.IGraphProto = {
      name: `${graph.name ?? 'model'}_segment_${k}`,
      node: allNodes.map((n) => index.nodes[n] as onnx.INodeProto),
      initializer: [...usedInitializers].map((name) => initializerByName.get(name) as onnx.ITensorProto),
      input: inputIo.map((io) => declared.get(io.name) ?? makeValueInfo(io.name, elemOfOrtType(io.type), io.dims)),
      output: outputIo.map(
        (io) =>
          (modelOutputs.has(io.name) ? declared.get(io.name) : undefined) ??
          makeValueInfo(io.name, elemOfOrtType(io.type), io.dims),
      ),
    };
    return {
      index: k,
      endsAt: cuts[k],
      inputs: inputIo,
      outputs: outputIo,
      nodeCount: ordered.length,
      model: {
        irVersion: model.irVersion,
        opsetImport: model.opsetImport,
        producerName: 'offramp',
        domain: model.domain,
        modelVersion: model.modelVersion,
        functions: model.functions,
        graph: segmentGraph,
      },
    };
  });
}
