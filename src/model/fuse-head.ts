/**
 * Fuses an exit head into the segment that ends at its ramp's tensor: one model whose outputs
 * are the segment's own (the boundary tensor the next segment reads) plus the head's
 * probabilities, so one onnxruntime call yields both. Each call costs a fixed overhead (a trip
 * into native code, an event-loop turn in onnxruntime-node, tensor wrapping and an output copy),
 * which for a head as small as offramp's is most of its cost (bench/segment-granularity.ts
 * measures both paths). The engine fuses the active ramps' heads when it re-splits at them
 * (src/engine/executor/backbone-runner.ts).
 *
 * Invariant: the fused model computes exactly the segment and the head, node for node; the
 * head's names (nodes, intermediate tensors, initializers, its output) are prefixed so they
 * cannot collide with the backbone's, and only the boundary tensor it reads keeps its name.
 */
import type { onnx } from './onnx-model.js';

export interface FusedSegment {
  model: onnx.IModelProto;
  /** Name of the head's probabilities among the fused model's outputs. */
  probs: string;
}

function opsetKey(o: onnx.IOperatorSetIdProto): string {
  return o.domain ?? '';
}

function versionOf(o: onnx.IOperatorSetIdProto): string {
  return String(o.version ?? 0);
}

/**
 * @param boundary the ramp's tensor: an output of `segment` and the head's only input.
 * @param prefix prepended to every name the head defines (say "offramp.head3/").
 * @throws when the head reads anything but the boundary tensor, uses subgraphs, or needs an
 *   operator-set version the segment does not import (the caller then keeps them apart).
 */
export function fuseHead(
  segment: onnx.IModelProto,
  head: onnx.IModelProto,
  boundary: string,
  prefix: string,
): FusedSegment {
  const sg = segment.graph;
  const hg = head.graph;
  if (!sg || !hg) throw new Error('segment or head has no graph');
  if (!(sg.output ?? []).some((o) => o.name === boundary))
    throw new Error(`the segment does not output the ramp's tensor '${boundary}'`);
  const headInits = new Set((hg.initializer ?? []).map((t) => t.name ?? ''));
  const headInputs = (hg.input ?? []).map((i) => i.name ?? '').filter((n) => !headInits.has(n));
  if (headInputs.length !== 1 || headInputs[0] !== boundary)
    throw new Error(`the head must read only '${boundary}', it reads ${JSON.stringify(headInputs)}`);
  if ((hg.output ?? []).length !== 1) throw new Error('the head must have exactly one output');
  const segmentOpsets = new Map((segment.opsetImport ?? []).map((o) => [opsetKey(o), versionOf(o)]));
  for (const o of head.opsetImport ?? []) {
    if (segmentOpsets.get(opsetKey(o)) !== versionOf(o))
      throw new Error(`the head imports opset '${opsetKey(o)}' ${versionOf(o)}, which the segment does not`);
  }
  if ((head.functions ?? []).length > 0) throw new Error('heads with model-local functions are not fused');

  const rename = (name: string): string => (name === '' || name === boundary ? name : prefix + name);
  const nodes = (hg.node ?? []).map((n): onnx.INodeProto => {
    if ((n.attribute ?? []).some((a) => a.g || (a.graphs ?? []).length > 0))
      throw new Error('heads with subgraphs are not fused');
    return {
      ...n,
      name: n.name ? prefix + n.name : null,
      input: (n.input ?? []).map(rename),
      output: (n.output ?? []).map(rename),
    };
  });
  const initializers = (hg.initializer ?? []).map((t): onnx.ITensorProto => ({ ...t, name: rename(t.name ?? '') }));
  const headOutput = hg.output?.[0] as onnx.IValueInfoProto;
  const probs = rename(headOutput.name ?? '');
  return {
    probs,
    model: {
      ...segment,
      graph: {
        ...sg,
        node: [...(sg.node ?? []), ...nodes],
        initializer: [...(sg.initializer ?? []), ...initializers],
        output: [...(sg.output ?? []), { ...headOutput, name: probs }],
      },
    },
  };
}
