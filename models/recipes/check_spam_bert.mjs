#!/usr/bin/env node
// Check the exported spam backbone under onnxruntime-node and time it at batch 1.
//
// 1. Agreement: the first N committed test texts are tokenised by the serving-side JS
//    tokenizer (@huggingface/tokenizers on models/spam-bert.tokenizer.json, truncated like
//    the recipe: first 255 ids, then [SEP]) and run one at a time; their logits are compared
//    with the torch logits train_spam_bert.py wrote (/tmp/spam-bert-torch-logits.json).
//    Both the tokenizer and the graph are thus checked end to end against the trainer.
// 2. Latency: batch 1, one intra-op thread, one inter-op thread, graph optimisation 'all'
//    (the settings a default offramp worker uses): a 256-id input (the truncation length,
//    which most test texts reach) and the real test texts' lengths. Warm-up first; the
//    median and p90 over the timed runs. Run it on an otherwise idle machine.
// The results go into models/spam-bert.train.json (keys onnxruntime_check, batch1_latency).
//
// Usage (from the repository root, after train_spam_bert.py):
//   node models/recipes/check_spam_bert.mjs [--texts 300] [--runs 200]

import { readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { gunzipSync } from "node:zlib";
import { Tokenizer } from "@huggingface/tokenizers";
import ort from "onnxruntime-node";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const MAX_LENGTH = 256;
const SEP_ID = 3;

const { values } = parseArgs({
  options: {
    texts: { type: "string", default: "300" },
    runs: { type: "string", default: "200" },
    "torch-logits": { type: "string", default: "/tmp/spam-bert-torch-logits.json" },
  },
});

const readJsonlGz = (path) =>
  gunzipSync(readFileSync(path))
    .toString("utf8")
    .split("\n")
    .filter((l) => l.length > 0)
    .map((l) => JSON.parse(l));

const tokenizer = new Tokenizer(JSON.parse(readFileSync(join(ROOT, "models", "spam-bert.tokenizer.json"), "utf8")), {});
const encode = (text) => {
  const ids = tokenizer.encode(text).ids;
  return ids.length <= MAX_LENGTH ? ids : [...ids.slice(0, MAX_LENGTH - 1), SEP_ID];
};
const feeds = (ids) => {
  const dims = [1, ids.length];
  return {
    input_ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), dims),
    attention_mask: new ort.Tensor("int64", new BigInt64Array(ids.length).fill(1n), dims),
  };
};

const session = await ort.InferenceSession.create(join(ROOT, "models", "spam-bert.onnx"), {
  executionProviders: ["cpu"],
  graphOptimizationLevel: "all",
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
});

// ---------------------------------------------------------------- agreement with torch
const test = readJsonlGz(join(ROOT, "models", "data", "spam-assassin", "test.jsonl.gz"));
const reference = JSON.parse(readFileSync(values["torch-logits"], "utf8"));
const n = Math.min(Number(values.texts), reference.ids.length);
let maxAbs = 0;
let argmaxEqual = 0;
for (let i = 0; i < n; i++) {
  if (test[i].id !== reference.ids[i]) throw new Error(`text ${i}: ${test[i].id} != ${reference.ids[i]}`);
  const out = (await session.run(feeds(encode(test[i].text)))).logits.data;
  const ref = reference.logits[i];
  maxAbs = Math.max(maxAbs, Math.abs(out[0] - ref[0]), Math.abs(out[1] - ref[1]));
  if (out[0] > out[1] === ref[0] > ref[1]) argmaxEqual++;
}
console.log(`onnxruntime vs torch on ${n} texts: argmax equal ${argmaxEqual}, max |diff| ${maxAbs}`);

// --------------------------------------------------------------------- batch-1 latency
const runs = Number(values.runs);
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
async function time(inputs) {
  const ms = [];
  for (const f of inputs) {
    const t = process.hrtime.bigint();
    await session.run(f);
    ms.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return ms;
}
const full = feeds(Array.from({ length: MAX_LENGTH }, (_, i) => (i === 0 ? 2 : i === MAX_LENGTH - 1 ? SEP_ID : 100 + i)));
await time(Array.from({ length: 20 }, () => full)); // warm-up
const fullMs = await time(Array.from({ length: runs }, () => full));
const textIds = test.slice(0, runs).map((r) => encode(r.text));
const textMs = await time(textIds.map(feeds));
const lengths = textIds.map((x) => x.length);
const round = (x) => Math.round(x * 100) / 100;
const latency = {
  command: "node models/recipes/check_spam_bert.mjs",
  settings: "onnxruntime-node, CPU EP, batch 1, intraOpNumThreads 1, interOpNumThreads 1, graphOptimizationLevel all",
  onnxruntime_node: JSON.parse(readFileSync(join(ROOT, "node_modules", "onnxruntime-node", "package.json"), "utf8"))
    .version,
  cpu: cpus()[0]?.model,
  load_average_1m_at_end: 0,
  ids_256: { runs, median_ms: round(quantile(fullMs, 0.5)), p90_ms: round(quantile(fullMs, 0.9)) },
  test_texts: {
    texts: textIds.length,
    median_ids: quantile(lengths, 0.5),
    median_ms: round(quantile(textMs, 0.5)),
    p90_ms: round(quantile(textMs, 0.9)),
  },
};
latency.load_average_1m_at_end = round(loadavg()[0]);
console.log(JSON.stringify(latency, null, 2));

const reportPath = join(ROOT, "models", "spam-bert.train.json");
const report = JSON.parse(readFileSync(reportPath, "utf8"));
report.onnxruntime_check = {
  texts: n,
  tokenizer: "@huggingface/tokenizers (JS), truncated to 256",
  argmax_agreement: argmaxEqual / n,
  max_abs_logit_diff: maxAbs,
};
report.batch1_latency = latency;
writeFileSync(reportPath, JSON.stringify(report, null, 2) + "\n");
console.log(`updated ${reportPath}`);
