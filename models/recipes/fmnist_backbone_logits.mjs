#!/usr/bin/env node
// Runs the Fashion-MNIST backbone (models/fmnist-resnet.onnx) with onnxruntime-node over a whole
// IDX split and writes its logits as .npy, so that train_fmnist_members.py can distil the cascade
// members from the backbone exactly as it is served (onnxruntime-node, not a torch re-run of the
// graph) without Python's onnxruntime, which Debian does not package.
//
// Reads the Debian `dataset-fashion-mnist` IDX files directly (same bytes as the committed
// models/data copy of the test split). With --flip it also runs every image mirrored left-right
// (the flips train_fmnist_members.py uses as extra distillation inputs).
//
// Outputs (float32 .npy v1.0, C order; nothing here is committed):
//   OUT/SPLIT-logits.npy        [N,10]
//   OUT/SPLIT-flip-logits.npy   [N,10]  (with --flip)
//
// Usage (from the repository root):
//   node models/recipes/fmnist_backbone_logits.mjs --split train --flip [--out /tmp/fmnist-backbone]

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gunzipSync } from "node:zlib";
import ort from "onnxruntime-node";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { values } = parseArgs({
  options: {
    split: { type: "string", default: "train" },
    flip: { type: "boolean", default: false },
    out: { type: "string", default: "/tmp/fmnist-backbone" },
    "data-dir": { type: "string", default: "/usr/share/datasets/fashion-mnist" },
    model: { type: "string", default: join(ROOT, "models", "fmnist-resnet.onnx") },
    batch: { type: "string", default: "250" },
    threads: { type: "string", default: "1" },
  },
});

function readIdxImages(path) {
  const buf = gunzipSync(readFileSync(path));
  if (buf.readUInt32BE(0) !== 0x00000803) throw new Error(`${path}: not an IDX uint8 rank-3 file`);
  const [n, rows, cols] = [buf.readUInt32BE(4), buf.readUInt32BE(8), buf.readUInt32BE(12)];
  if (buf.length !== 16 + n * rows * cols) throw new Error(`${path}: truncated`);
  return { n, rows, cols, pixels: buf.subarray(16) };
}

function npyFloat32(array, shape) {
  // Header padded with spaces to a multiple of 64 bytes including the magic, per the .npy v1.0 spec.
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  header = header.padEnd(Math.ceil((10 + header.length + 1) / 64) * 64 - 10 - 1, " ") + "\n";
  const head = Buffer.alloc(10);
  head.write("\x93NUMPY", 0, "latin1");
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([head, Buffer.from(header, "latin1"), Buffer.from(array.buffer, array.byteOffset, array.byteLength)]);
}

const prefix = { train: "train", test: "t10k" }[values.split];
if (!prefix) throw new Error(`--split must be train or test, not ${values.split}`);
const { n, rows, cols, pixels } = readIdxImages(join(values["data-dir"], `${prefix}-images-idx3-ubyte.gz`));
const session = await ort.InferenceSession.create(values.model, {
  graphOptimizationLevel: "all",
  intraOpNumThreads: Number(values.threads),
  interOpNumThreads: 1,
});
const size = rows * cols;
const batch = Number(values.batch);
mkdirSync(values.out, { recursive: true });
for (const flip of values.flip ? [false, true] : [false]) {
  const logits = new Float32Array(n * 10);
  const t0 = Date.now();
  for (let start = 0; start < n; start += batch) {
    const b = Math.min(batch, n - start);
    const x = new Float32Array(b * size);
    for (let i = 0; i < b; i++) {
      const src = (start + i) * size;
      for (let r = 0; r < rows; r++) {
        for (let c = 0; c < cols; c++) {
          x[i * size + r * cols + c] = pixels[src + r * cols + (flip ? cols - 1 - c : c)] / 255;
        }
      }
    }
    const out = await session.run({ pixels: new ort.Tensor("float32", x, [b, 1, rows, cols]) });
    logits.set(out.logits.data, start * 10);
  }
  const path = join(values.out, `${values.split}${flip ? "-flip" : ""}-logits.npy`);
  writeFileSync(path, npyFloat32(logits, [n, 10]));
  console.log(`wrote ${path} (${n} rows, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
}
