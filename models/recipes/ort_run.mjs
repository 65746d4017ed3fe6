#!/usr/bin/env node
// Runs an ONNX model with onnxruntime-node (the runtime offramp serves with) on the inputs given
// as JSON on stdin and prints the outputs as JSON: export_zoo.py --verify uses it where Python's
// onnxruntime is not installed (Debian packages none).
//
// stdin:  {"model": PATH, "cases": [{NAME: {"type": "int64"|"float32", "dims": [...], "data": [...]}}]}
// stdout: [{OUTPUT: {"dims": [...], "data": [...]}}], one object per case
//
// Usage (from the repository root, which holds node_modules): node models/recipes/ort_run.mjs < in.json

import ort from "onnxruntime-node";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { model, cases } = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 1, interOpNumThreads: 1 });
const results = [];
for (const feeds of cases) {
  const tensors = {};
  for (const [name, { type, dims, data }] of Object.entries(feeds)) {
    const values = type === "int64" ? BigInt64Array.from(data, BigInt) : Float32Array.from(data);
    tensors[name] = new ort.Tensor(type, values, dims);
  }
  const outputs = await session.run(tensors);
  results.push(
    Object.fromEntries(
      Object.entries(outputs).map(([name, t]) => [name, { dims: t.dims, data: Array.from(t.data, Number) }]),
    ),
  );
}
process.stdout.write(JSON.stringify(results));
