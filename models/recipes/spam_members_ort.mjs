#!/usr/bin/env node
// onnxruntime-node side of train_spam_members.py (Python's onnxruntime is not installed here, and
// onnxruntime-node is what offramp serves with, so the figures are the serving runtime's).
//
// Every session: CPU EP, graphOptimizationLevel 'all', intraOpNumThreads 1, interOpNumThreads 1
// (a default offramp worker's settings).
//
//   run    logits of one model on id lists, one row at a time and unpadded (as a batch-1 request
//          arrives); train_spam_members.py uses it for the backbone's logits on the train split
//          (the distillation targets) and on the test split (what "agreement" is measured against).
//          in:  {"model": PATH, "ids": [[id, ...], ...]}          out: {"logits": [[ham, spam], ...]}
//   check  for every member: (1) its logits on the rows that carry torch logits, each row alone
//          and unpadded, compared with torch; (2) the same rows padded with [PAD]/mask 0 to
//          `pad_to` ids, alone and as batches of 16 (what a server batch does to a short row),
//          compared with the unpadded logits; (3) its logits on every row (for the test-split
//          figures); (4) latency at batch 1 and 16 on rows of 256 ids, the backbone timed in
//          the same process between the members. Medians over the timed runs after a warm-up.
//          in:  {"backbone": PATH, "members": {NAME: PATH}, "rows": [{"ids": [...], "torch": {NAME: [2]}?}],
//                "time_rows": [[256 ids] x >= 16], "pad_to": 256, "runs": {...}}
//          out: {"members": {NAME: {...}}, "latency": {...}}
//
// Usage (from the repository root; train_spam_members.py writes the inputs and calls it):
//   node models/recipes/spam_members_ort.mjs run|check IN.json OUT.json

import { readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ort from "onnxruntime-node";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const [mode, inPath, outPath] = process.argv.slice(2);
if (!["run", "check"].includes(mode) || !inPath || !outPath) {
  console.error("usage: node models/recipes/spam_members_ort.mjs run|check IN.json OUT.json");
  process.exit(2);
}
const input = JSON.parse(readFileSync(inPath, "utf8"));

const open = (path) =>
  ort.InferenceSession.create(path, {
    executionProviders: ["cpu"],
    graphOptimizationLevel: "all",
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });

// Rows padded to the batch's longest (or to `length`) with [PAD] = 0 and mask 0, as the server does.
function feeds(rows, length = Math.max(...rows.map((r) => r.length))) {
  const ids = new BigInt64Array(rows.length * length);
  const mask = new BigInt64Array(rows.length * length);
  rows.forEach((r, b) => {
    r.forEach((id, i) => {
      ids[b * length + i] = BigInt(id);
      mask[b * length + i] = 1n;
    });
  });
  const dims = [rows.length, length];
  return { input_ids: new ort.Tensor("int64", ids, dims), attention_mask: new ort.Tensor("int64", mask, dims) };
}

async function logits(session, rows, length) {
  const data = (await session.run(feeds(rows, length))).logits.data;
  return rows.map((_, b) => [data[2 * b], data[2 * b + 1]]);
}

const maxDiff = (a, b) => Math.max(...a.map((x, i) => Math.abs(x[0] - b[i][0]), ...a.map((x, i) => Math.abs(x[1] - b[i][1]))));

if (mode === "run") {
  const session = await open(input.model);
  const out = [];
  for (const ids of input.ids) out.push((await logits(session, [ids]))[0]);
  writeFileSync(outPath, JSON.stringify({ logits: out }));
  process.exit(0);
}

// ------------------------------------------------------------------------------ check
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const round = (x, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
const padTo = input.pad_to ?? 256;
const result = { members: {}, latency: {} };
const sessions = {};
for (const [name, path] of Object.entries(input.members)) {
  const session = (sessions[name] = await open(path));
  const checked = input.rows.filter((r) => r.torch?.[name]);
  const alone = [];
  for (const r of checked) alone.push((await logits(session, [r.ids]))[0]);
  const torchDiff = maxDiff(
    alone,
    checked.map((r) => r.torch[name]),
  );
  let argmaxEqual = 0;
  alone.forEach((l, i) => {
    if (l[0] > l[1] === checked[i].torch[name][0] > checked[i].torch[name][1]) argmaxEqual++;
  });
  const short = checked.map((r, i) => [r.ids, alone[i]]).filter(([ids]) => ids.length < padTo);
  const paddedAlone = [];
  for (const [ids] of short) paddedAlone.push((await logits(session, [ids], padTo))[0]);
  const paddedBatch = [];
  for (let i = 0; i < checked.length; i += 16) {
    paddedBatch.push(...(await logits(session, checked.slice(i, i + 16).map((r) => r.ids), padTo)));
  }
  const all = [];
  for (const r of input.rows) all.push((await logits(session, [r.ids]))[0]);
  result.members[name] = {
    torch_check: {
      rows: checked.length,
      argmax_equal: argmaxEqual,
      max_abs_logit_diff: torchDiff,
    },
    padding_check: {
      rows_shorter_than_pad: short.length,
      pad_to: padTo,
      max_abs_diff_padded_alone: short.length ? maxDiff(paddedAlone, short.map(([, l]) => l)) : null,
      max_abs_diff_padded_in_batches_of_16: maxDiff(paddedBatch, alone),
    },
    logits: all,
  };
}

const backbone = await open(input.backbone);
const runs = input.runs ?? { b1: 300, b16: 60, backbone_b1: 100, backbone_b16: 15, warmup: 10 };
async function time(session, batch, n) {
  const rows = input.time_rows;
  const inputs = [];
  for (let i = 0; i + batch <= rows.length; i += batch) inputs.push(feeds(rows.slice(i, i + batch)));
  for (let i = 0; i < runs.warmup; i++) await session.run(inputs[i % inputs.length]);
  const ms = [];
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    await session.run(inputs[i % inputs.length]);
    ms.push(Number(process.hrtime.bigint() - t) / 1e6 / batch);
  }
  return ms;
}
// Members, then the backbone, then the members again, so that a load change from the other
// work on the machine shows as a gap between a member's two passes; a member's figure is the
// median of both passes' runs.
const ms = {};
const order = [...Object.entries(sessions), ["backbone", backbone], ...Object.entries(sessions)];
for (const [name, session] of order) {
  for (const batch of [1, 16]) {
    const n = name === "backbone" ? runs[`backbone_b${batch}`] : runs[`b${batch}`];
    const key = `b${batch}`;
    ((ms[name] ??= {})[key] ??= []).push(await time(session, batch, n));
  }
}
for (const [name, byBatch] of Object.entries(ms)) {
  result.latency[name] = Object.fromEntries(
    Object.entries(byBatch).map(([key, passes]) => [
      key,
      {
        runs: passes.flat().length,
        median_ms_per_row: round(median(passes.flat()), 4),
        pass_medians_ms_per_row: passes.map((p) => round(median(p), 4)),
      },
    ]),
  );
}
result.latency_settings = {
  settings:
    "onnxruntime-node, CPU EP, intraOpNumThreads 1, interOpNumThreads 1, graphOptimizationLevel all; rows of 256 ids (test texts that reach the truncation length); batch 16 = 16 such rows",
  onnxruntime_node: JSON.parse(readFileSync(join(ROOT, "node_modules", "onnxruntime-node", "package.json"), "utf8")).version,
  cpu: cpus()[0]?.model,
  load_average_1m_at_end: round(loadavg()[0], 2),
};
writeFileSync(outPath, JSON.stringify(result));
console.log(JSON.stringify({ latency: result.latency, settings: result.latency_settings }, null, 1));
