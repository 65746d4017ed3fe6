#!/usr/bin/env node
// Check the Fashion-MNIST cascade members under onnxruntime-node, measure them against the
// backbone, and time them next to it. train_fmnist_members.py runs this after the export.
//
// 1. ONNX vs torch: logits of the first 1000 committed test images against the torch logits
//    the trainer wrote (/tmp/fmnist-members-torch-logits.npy, [members,1000,10]).
// 2. On the whole committed test split (models/data/fashion-mnist, 10k): every member's
//    accuracy vs the labels and agreement (argmax) with the backbone, and the ABC figures for
//    k=3: rows where all 3 members agree (the tier answers) and rows where at least 2 agree
//    (majority vote), each with its share of the split, the members' disagreement with the
//    backbone on those rows and over the whole split (deferred rows cost nothing), and the
//    accuracy of the cascade (members on the answered rows, backbone on the rest).
// 3. Latency: batch 1 and batch 16, one intra-op and one inter-op thread, graph optimisation
//    'all' (a default offramp worker's settings), CPU EP. The backbone is timed in the same
//    run; the models take turns in short blocks over several rounds so that load from other
//    processes falls on all of them alike. Reported: the median and p90 of session.run
//    wall time per call, and the median per row.
// The results go into models/members/fmnist-members.train.json.
//
// Usage (from the repository root, after train_fmnist_members.py):
//   node models/recipes/check_fmnist_members.mjs [--rounds 20] [--runs 50] [--dir models/members]

import { readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gunzipSync } from "node:zlib";
import ort from "onnxruntime-node";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { values } = parseArgs({
  options: {
    members: { type: "string", default: "logreg,mlp,cnn" },
    "torch-logits": { type: "string", default: "/tmp/fmnist-members-torch-logits.npy" },
    rounds: { type: "string", default: "20" },
    runs: { type: "string", default: "50" },
    dir: { type: "string", default: join(ROOT, "models", "members") },
  },
});
const names = values.members.split(",");

function readNpy(buf) {
  if (buf.toString("latin1", 0, 6) !== "\x93NUMPY") throw new Error("not a .npy file");
  const headerLength = buf.readUInt16LE(8);
  const header = buf.toString("latin1", 10, 10 + headerLength);
  const descr = /'descr': '([^']+)'/.exec(header)[1];
  const shape = /'shape': \(([^)]*)\)/.exec(header)[1].split(",").filter((s) => s.trim()).map(Number);
  if (/'fortran_order': True/.test(header)) throw new Error("Fortran order not supported");
  const body = buf.subarray(10 + headerLength);
  const copy = new Uint8Array(body).buffer; // aligned copy for the typed-array views
  const data = { "|u1": () => new Uint8Array(copy), "<f4": () => new Float32Array(copy) }[descr];
  if (!data) throw new Error(`dtype ${descr} not supported`);
  return { shape, data: data() };
}

const dataDir = join(ROOT, "models", "data", "fashion-mnist");
const images = readNpy(gunzipSync(readFileSync(join(dataDir, "test-images.npy.gz"))));
const labels = readNpy(gunzipSync(readFileSync(join(dataDir, "test-labels.npy.gz")))).data;
const n = images.shape[0];
const pixels = Float32Array.from(images.data, (v) => v / 255);
const rows = (start, count) =>
  new ort.Tensor("float32", pixels.slice(start * 784, (start + count) * 784), [count, 1, 28, 28]);

const options = { executionProviders: ["cpu"], graphOptimizationLevel: "all", intraOpNumThreads: 1, interOpNumThreads: 1 };
const paths = {
  backbone: join(ROOT, "models", "fmnist-resnet.onnx"),
  ...Object.fromEntries(names.map((m) => [m, join(values.dir, `fmnist-${m}.onnx`)])),
};
const sessions = {};
for (const [name, path] of Object.entries(paths)) sessions[name] = await ort.InferenceSession.create(path, options);

// ------------------------------------------------------------------ logits on the test split
const argmax = (data, i) => {
  let best = 0;
  for (let c = 1; c < 10; c++) if (data[i * 10 + c] > data[i * 10 + best]) best = c;
  return best;
};
const logits = {};
const preds = {};
for (const name of Object.keys(sessions)) {
  logits[name] = new Float32Array(n * 10);
  for (let start = 0; start < n; start += 500) {
    const count = Math.min(500, n - start);
    logits[name].set((await sessions[name].run({ pixels: rows(start, count) })).logits.data, start * 10);
  }
  preds[name] = Int32Array.from({ length: n }, (_, i) => argmax(logits[name], i));
}
const round = (x, digits = 4) => Math.round(x * 10 ** digits) / 10 ** digits;
const share = (pred) => pred.filter(Boolean).length / n;

const torchRef = readNpy(readFileSync(values["torch-logits"]));
const [, checkRows] = torchRef.shape;
const figures = {};
names.forEach((name, k) => {
  let maxAbs = 0;
  let argmaxEqual = 0;
  const ref = torchRef.data.subarray(k * checkRows * 10, (k + 1) * checkRows * 10);
  for (let i = 0; i < checkRows; i++) {
    for (let c = 0; c < 10; c++) maxAbs = Math.max(maxAbs, Math.abs(logits[name][i * 10 + c] - ref[i * 10 + c]));
    if (argmax(ref, i) === preds[name][i]) argmaxEqual++;
  }
  figures[name] = {
    test_accuracy: round(share(Array.from(preds[name], (p, i) => p === labels[i]))),
    agreement_with_backbone: round(share(Array.from(preds[name], (p, i) => p === preds.backbone[i]))),
    onnx_vs_torch: { images: checkRows, max_abs_logit_diff: maxAbs, argmax_agreement: argmaxEqual / checkRows },
  };
  console.log(`${name}: ${JSON.stringify(figures[name])}`);
});
const backboneAccuracy = share(Array.from(preds.backbone, (p, i) => p === labels[i]));
console.log(`backbone: test accuracy ${backboneAccuracy}`);

// ------------------------------------------------------------------------------ ABC (k = 3)
function abc(minVotes) {
  let answered = 0;
  let disagree = 0;
  let correct = 0;
  for (let i = 0; i < n; i++) {
    const votes = new Map();
    for (const name of names) votes.set(preds[name][i], (votes.get(preds[name][i]) ?? 0) + 1);
    const [label, count] = [...votes].sort((a, b) => b[1] - a[1])[0];
    const answer = count >= minVotes ? label : preds.backbone[i];
    if (count >= minVotes) {
      answered++;
      if (label !== preds.backbone[i]) disagree++;
    }
    if (answer === labels[i]) correct++;
  }
  return {
    answered_share: round(answered / n),
    disagreement_with_backbone_on_answered: round(disagree / answered),
    disagreement_with_backbone_overall: round(disagree / n),
    disagreeing_rows: disagree,
    cascade_test_accuracy: round(correct / n),
  };
}
// Agreement alone is a fixed rule. For scale, the same tier with a confidence floor on top:
// all agree and the members' mean softmax probability of the agreed class >= tau, tau the
// lowest that keeps overall disagreement <= 1 % on the even test rows, evaluated on the odd;
// and each member alone with the same kind of floor, to see what the vote adds.
const softmaxAt = (data, i, c) => {
  let max = -Infinity;
  for (let k = 0; k < 10; k++) max = Math.max(max, data[i * 10 + k]);
  let sum = 0;
  for (let k = 0; k < 10; k++) sum += Math.exp(data[i * 10 + k] - max);
  return Math.exp(data[i * 10 + c] - max) / sum;
};
function gated(voters) {
  const byParity = [[], []]; // [score, disagrees] for the rows where all voters agree
  for (let i = 0; i < n; i++) {
    const c = preds[voters[0]][i];
    if (!voters.every((m) => preds[m][i] === c)) continue;
    const score = voters.reduce((sum, m) => sum + softmaxAt(logits[m], i, c), 0) / voters.length;
    byParity[i % 2].push([score, c !== preds.backbone[i]]);
  }
  const [even, odd] = byParity.map((xs) => xs.sort((a, b) => b[0] - a[0]));
  const half = [Math.ceil(n / 2), Math.floor(n / 2)];
  let tau = Infinity;
  let bad = 0;
  for (let j = 0; j < even.length; j++) {
    bad += even[j][1] ? 1 : 0;
    if (bad / half[0] <= 0.01 && (j + 1 === even.length || even[j + 1][0] < even[j][0])) tau = even[j][0];
  }
  const answered = odd.filter(([score]) => score >= tau);
  const disagree = answered.filter(([, d]) => d).length;
  return {
    tau: round(tau, 6),
    answered_share: round(answered.length / half[1]),
    disagreement_with_backbone_on_answered: round(disagree / Math.max(1, answered.length)),
    disagreement_with_backbone_overall: round(disagree / half[1]),
  };
}
const abcFigures = {
  members: names,
  all_agree: abc(names.length),
  majority_2_of_3: abc(2),
  confidence_floor: {
    rule: "answer when the voters agree and their mean softmax of the agreed class >= tau; tau the lowest " +
      "keeping overall disagreement <= 1 % on the even test rows; figures on the odd rows (5000)",
    all_agree: gated(names),
    ...Object.fromEntries(names.map((m) => [`${m}_alone`, gated([m])])),
  },
};
console.log(`ABC: ${JSON.stringify(abcFigures)}`);

// ----------------------------------------------------------------------------------- latency
const rounds = Number(values.rounds);
const runs = Number(values.runs);
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const inputs = { 1: Array.from({ length: runs }, (_, i) => rows(i, 1)), 16: Array.from({ length: runs }, (_, i) => rows(16 * i, 16)) };
const ms = Object.fromEntries(Object.keys(sessions).map((m) => [m, { 1: [], 16: [] }]));
async function block(name, batch, record) {
  for (const feed of inputs[batch]) {
    const t = process.hrtime.bigint();
    await sessions[name].run({ pixels: feed });
    if (record) ms[name][batch].push(Number(process.hrtime.bigint() - t) / 1e6);
  }
}
for (const name of Object.keys(sessions)) for (const batch of [1, 16]) await block(name, batch, false); // warm-up
const order = Object.keys(sessions);
for (let r = 0; r < rounds; r++) {
  // Rotate the order each round so that no model always runs right after the same one.
  for (const name of [...order.slice(r % order.length), ...order.slice(0, r % order.length)]) {
    for (const batch of [1, 16]) await block(name, batch, true);
  }
}
const latency = {
  command: "node models/recipes/check_fmnist_members.mjs",
  settings: "onnxruntime-node, CPU EP, intraOpNumThreads 1, interOpNumThreads 1, graphOptimizationLevel all; " +
    `${rounds} rounds x ${runs} calls per model and batch size, models interleaved; session.run wall time`,
  onnxruntime_node: JSON.parse(readFileSync(join(ROOT, "node_modules", "onnxruntime-node", "package.json"), "utf8")).version,
  cpu: cpus()[0]?.model,
  load_average_1m_at_end: round(loadavg()[0], 2),
};
const timing = {};
for (const name of Object.keys(sessions)) {
  const [b1, b16] = [ms[name][1], ms[name][16]];
  timing[name] = {
    batch1_ms_per_row: round(quantile(b1, 0.5)),
    batch1_p90_ms: round(quantile(b1, 0.9)),
    batch16_ms_per_row: round(quantile(b16, 0.5) / 16),
    batch16_ms_per_call: round(quantile(b16, 0.5)),
    batch16_p90_ms_per_call: round(quantile(b16, 0.9)),
  };
}
for (const name of names) {
  timing[name].batch1_share_of_backbone = round(timing[name].batch1_ms_per_row / timing.backbone.batch1_ms_per_row, 3);
}
console.log(JSON.stringify({ ...latency, timing }, null, 2));

const reportPath = join(values.dir, "fmnist-members.train.json");
const report = JSON.parse(readFileSync(reportPath, "utf8"));
for (const name of names) Object.assign(report.members[name], figures[name], { latency: timing[name] });
report.backbone = {
  file: "models/fmnist-resnet.onnx",
  test_accuracy: round(backboneAccuracy),
  bytes: readFileSync(paths.backbone).length,
  latency: timing.backbone,
};
report.abc_test_split = abcFigures;
report.latency_settings = latency;
writeFileSync(reportPath, JSON.stringify(report, null, 2) + "\n");
console.log(`updated ${reportPath}`);
