/**
 * Re-splits a prepared model at a subset of its ramps: one segment from each active ramp's cut to
 * the next, instead of one per candidate cut. The serving engine runs these when the ramp set
 * changes (src/engine/executor/backbone-runner.ts): every segment boundary costs onnxruntime a
 * session call, the tensor's copy out and back in, and the fusions it cannot make across the cut,
 * so fewer boundaries are faster (bench/segment-granularity.ts: the bundled model at batch 16 ran
 * 165 % of the whole model's time on its 9 segments, 135 % on 4).
 *
 * The prepared segments already describe every boundary tensor (name, type, shape), which is all
 * `splitModel` needs to know about a cut: no probing run of the model is needed here.
 */
import { indexGraph } from './graph.js';
import type { PreparedManifest } from './manifest.js';
import type { ModelProto } from './onnx-model.js';
import type { TensorFacts } from './split.js';
import { splitModel, type Segment } from './split.js';

/** Segments of `model` cut after the given ramps (ids of `manifest`), in model order. */
export function splitAtRamps(model: ModelProto, manifest: PreparedManifest, rampIds: readonly number[]): Segment[] {
  const graph = model.graph;
  if (!graph) throw new Error('model has no graph');
  const facts = new Map<string, TensorFacts>();
  for (const io of [
    ...manifest.model.inputs,
    ...manifest.model.outputs,
    ...manifest.segments.flatMap((s) => [...s.inputs, ...s.outputs]),
  ]) {
    facts.set(io.name, { name: io.name, type: io.type, dims: io.dims, elemsPerRow: 0 });
  }
  const cuts = [...new Set(rampIds)]
    .sort((a, b) => a - b)
    .map((id) => {
      const ramp = manifest.ramps.find((r) => r.id === id);
      if (!ramp) throw new Error(`no ramp ${id} in ${manifest.name}`);
      return ramp.tensor;
    });
  return splitModel(model, indexGraph(graph), cuts, facts);
}
