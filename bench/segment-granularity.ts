/**
 * How should a new ramp set be applied: re-split the backbone at the new ramps' cuts, or keep the
 * finest split (one segment per candidate cut) and switch heads on and off? This measures both
 * costs on one model (issue 4 asks for the cheaper one, with the measurement):
 *  - toggling: every batch runs all fine segments, one onnxruntime call each; its cost is the
 *    chain's time over the whole model's, per batch, for as long as the server runs;
 *  - re-splitting: per ramp-set change, splitting the graph at the chosen cuts and creating the
 *    new segments' sessions (plus, not measured here, handing them to every worker), after which
 *    batches run through fewer calls.
 * Sessions are set up as serving sets them up (no spinning). Times are medians of alternating
 * runs in this process, ratios against the whole model measured in the same run. Nothing is
 * asserted.
 *
 *   npx tsx bench/segment-granularity.ts [--model models/fmnist-resnet] [--ramps 0,3,5] [--batch 16] [--runs 200] [--threads 2]
 */
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { analyseGraph } from '../ramps/cut-points.js';
import { servingSessionOptions } from '../src/model/onnx-session.js';
import { readManifest } from '../src/model/manifest.js';
import { decodeModel } from '../src/model/onnx-model.js';
import { OnnxSession } from '../src/model/onnx-session.js';
import type { HostTensor } from '../src/model/tensor.js';
import { randomInputs } from '../ramps/random-input.js';
import { SegmentChain } from '../src/model/segment-chain.js';
import { splitModel } from '../src/model/split.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/fmnist-resnet' },
    ramps: { type: 'string', default: '0,3,5' },
    batch: { type: 'string', default: '16' },
    runs: { type: 'string', default: '200' },
    threads: { type: 'string', default: '2' },
  },
});
const dir = resolve(args.model);
const batch = Number(args.batch);
const runs = Number(args.runs);
const threads = Number(args.threads);
const rampIds = args.ramps.split(',').map(Number);

const manifest = await readManifest(dir);
const model = decodeModel(await readFile(join(dir, 'model.onnx')));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

// Re-split: analyse, split at the chosen ramps' cuts, create sessions. Timed end to end, 5 times.
const resplitMs: number[] = [];
let coarse: SegmentChain | undefined;
for (let i = 0; i < 5; i++) {
  const t0 = performance.now();
  const analysis = await analyseGraph(model);
  const cuts = rampIds.map((id) => {
    const ramp = manifest.ramps.find((r) => r.id === id);
    if (!ramp) throw new Error(`no ramp ${id} in ${dir}`);
    return ramp.tensor;
  });
  const chain = await SegmentChain.load(
    splitModel(model, analysis.index, cuts, analysis.tensors),
    servingSessionOptions(threads),
  );
  resplitMs.push(performance.now() - t0);
  if (coarse) await coarse.release();
  coarse = chain;
}
if (!coarse) throw new Error('unreachable');

const fineAnalysis = await analyseGraph(model);
const fine = await SegmentChain.load(
  splitModel(
    model,
    fineAnalysis.index,
    manifest.ramps.map((r) => r.tensor),
    fineAnalysis.tensors,
  ),
  servingSessionOptions(threads),
);
const whole = await OnnxSession.create(join(dir, 'model.onnx'), servingSessionOptions(threads));
const inputs: Record<string, HostTensor> = randomInputs(fineAnalysis.index, { batch, other: 1 });

const times = { whole: [] as number[], fine: [] as number[], coarse: [] as number[] };
for (let i = 0; i < runs + 10; i++) {
  // Alternate, so drift in the machine's load hits all three alike; the first 10 are warm-up.
  let t = performance.now();
  await whole.run(inputs);
  const w = performance.now() - t;
  t = performance.now();
  await fine.run(inputs);
  const f = performance.now() - t;
  t = performance.now();
  await coarse.run(inputs);
  const c = performance.now() - t;
  if (i >= 10) {
    times.whole.push(w);
    times.fine.push(f);
    times.coarse.push(c);
  }
}
const wholeMs = median(times.whole);
const fineMs = median(times.fine);
const coarseMs = median(times.coarse);
const resplit = median(resplitMs);
const perBatchSaving = fineMs - coarseMs;
console.log(`model ${manifest.name}, batch ${batch}, ${threads} intra-op threads, ${runs} runs each (medians)`);
console.log(`whole model:                      ${wholeMs.toFixed(3)} ms`);
console.log(
  `finest split (${fine.segments.length} segments, toggling): ${fineMs.toFixed(3)} ms  (${((fineMs / wholeMs) * 100).toFixed(1)} % of whole)`,
);
console.log(
  `split at ramps ${rampIds.join(',')} (${coarse.segments.length} segments):   ${coarseMs.toFixed(3)} ms  ` +
    `(${((coarseMs / wholeMs) * 100).toFixed(1)} % of whole)`,
);
console.log(`re-split at a ramp-set change:    ${resplit.toFixed(0)} ms once (analyse + split + sessions)`);
console.log(
  perBatchSaving > 0
    ? `re-splitting pays off after ${Math.ceil(resplit / perBatchSaving)} batches at this size (it saves ${perBatchSaving.toFixed(3)} ms per batch)`
    : 'the finest split is no slower per batch: re-splitting never pays off at this size',
);
await Promise.all([fine.release(), coarse.release(), whole.release()]);
