/**
 * The ABC tier's reading of every test item, from real runs of its members with onnxruntime: each
 * member's vote and the tier's plurality (tuner/agreement-rule.ts, the rule the server applies).
 * Next to the backbone's answers in the recorded trace (trace.ts) it gives the cascade oracle
 * (oracle.ts) and what the members do offline.
 *
 * The members run as the server runs a tier: merged into one graph over the model's inputs
 * (src/model/cascade.ts), fed the same rows the raw loop uses (workload.ts: the images as the
 * model's floats; the emails tokenized and padded per batch, which the members are insensitive to
 * — their recipe checks it). Kept under tmp/bench/, named by a hash of the members, the manifest
 * and the data file, as the trace is: ~5 s for the 10k test images, about as long for the emails.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readTier } from '../../tuner/agreement-rule.js';
import { buildTierModels, memberOutput } from '../../src/model/cascade.js';
import type { PreparedManifest } from '../../src/model/manifest.js';
import { OnnxSession } from '../../src/model/onnx-session.js';
import type { HostTensor } from '../../src/model/tensor.js';
import type { ItemTrace } from './trace.js';
import type { Workload } from './workload.js';

/** The tier's reading of one test item. */
export interface CascadeItemTrace {
  /** Each member's class, in member order. */
  votes: number[];
  /** The tier's answer: the plurality class (ties to the higher mean probability). */
  plurality: number;
  /** The plurality's share of the votes (1 = all agree). */
  agreement: number;
}

/** What the members do over the test items, next to the backbone (the recorded trace) and the labels. */
export interface CascadeTraceSummary {
  path: string;
  recorded: boolean;
  items: number;
  /** Share of items where every member votes alike (what abc-fixed answers). */
  all_agree: number;
  /** Among those, the share whose plurality differs from the full model's answer. */
  all_agree_disagreement: number | null;
  /** Share of items whose plurality equals the full model's answer (where the cascade oracle stops at the tier). */
  plurality_agrees: number;
  /** Per member (name → share): its vote equals the full model's answer / the label. */
  member_agreement: Record<string, number>;
  member_accuracy: Record<string, number>;
}

const BATCH = 64;
/** Bump when the cached format or what is recorded changes. */
const FORMAT = 'offramp.cascade-trace/1';

async function tracePath(
  members: readonly string[],
  modelDir: string,
  data: string,
  cacheDir: string,
): Promise<string> {
  const hash = createHash('sha256')
    .update(FORMAT)
    .update(await readFile(join(modelDir, 'manifest.json')));
  for (const m of members) hash.update(m).update(await readFile(m));
  const stats = await stat(data);
  hash.update(`${stats.size}:${stats.mtimeMs}`);
  return join(cacheDir, `cascade-trace-${hash.digest('hex').slice(0, 12)}.json`);
}

async function record(
  members: readonly string[],
  manifest: PreparedManifest,
  workload: Workload,
): Promise<CascadeItemTrace[]> {
  const { rows } = await workload.overheadRows(Number.POSITIVE_INFINITY);
  const classes = manifest.model.classes;
  const [model] = await buildTierModels(
    { members: [...members], rule: 'vote' },
    manifest.model.inputs.map((io) => io.name),
    'merged',
  );
  const session = await OnnxSession.create(model as Uint8Array, { intraOpThreads: 1 });
  const outputs = members.map((_, i) => memberOutput(i));
  const traces: CascadeItemTrace[] = [];
  try {
    for (let start = 0; start < rows.rows; start += BATCH) {
      const indices = Array.from({ length: Math.min(BATCH, rows.rows - start) }, (_, i) => start + i);
      const all = rows.feeds(indices);
      const feeds: Record<string, HostTensor> = {};
      for (const name of session.inputNames) feeds[name] = all[name] as HostTensor;
      const out = await session.run(feeds, outputs);
      const probs = outputs.map((name) => out[name]?.data as Float32Array);
      indices.forEach((_, row) => {
        const r = readTier('vote', probs, row, classes);
        traces.push({ votes: r.votes, plurality: r.argmax, agreement: r.agreement });
      });
    }
  } finally {
    await session.release();
  }
  return traces;
}

/**
 * The tier of `members` (repository-relative ONNX files) over every test item of `workload`, in
 * data order; recorded once per members, model and data, then read from tmp/bench/.
 */
export async function cascadeItemTraces(
  members: readonly string[],
  modelDir: string,
  manifest: PreparedManifest,
  workload: Workload,
  cacheDir: string,
): Promise<{ traces: CascadeItemTrace[]; path: string; recorded: boolean }> {
  await mkdir(cacheDir, { recursive: true });
  const path = await tracePath(members, modelDir, workload.data, cacheDir);
  const cached = await readFile(path, 'utf8').then(
    (text) => (JSON.parse(text) as { traces: CascadeItemTrace[] }).traces,
    () => null,
  );
  if (cached) return { traces: cached, path, recorded: false };
  const traces = await record(members, manifest, workload);
  await writeFile(`${path}.partial`, JSON.stringify({ format: FORMAT, members, traces }) + '\n');
  await rename(`${path}.partial`, path);
  return { traces, path, recorded: true };
}

export function cascadeTraceSummary(
  trace: { traces: readonly CascadeItemTrace[]; path: string; recorded: boolean },
  memberNames: readonly string[],
  items: readonly ItemTrace[],
  labels: Int32Array,
): CascadeTraceSummary {
  const n = trace.traces.length;
  const share = (count: number, of = n): number => (of > 0 ? count / of : 0);
  const allAgree = trace.traces.flatMap((t, i) => (t.agreement === 1 ? [i] : []));
  const allAgreeWrong = allAgree.filter((i) => trace.traces[i]?.plurality !== items[i]?.final).length;
  return {
    path: trace.path,
    recorded: trace.recorded,
    items: n,
    all_agree: share(allAgree.length),
    all_agree_disagreement: allAgree.length > 0 ? allAgreeWrong / allAgree.length : null,
    plurality_agrees: share(trace.traces.filter((t, i) => t.plurality === items[i]?.final).length),
    member_agreement: Object.fromEntries(
      memberNames.map((name, m) => [name, share(trace.traces.filter((t, i) => t.votes[m] === items[i]?.final).length)]),
    ),
    member_accuracy: Object.fromEntries(
      memberNames.map((name, m) => [name, share(trace.traces.filter((t, i) => t.votes[m] === labels[i]).length)]),
    ),
  };
}
