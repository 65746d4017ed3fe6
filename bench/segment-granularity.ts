/**
 * What do a segment boundary and an exit head cost, and how much of it does fusing each head into
 * the segment before it (src/model/fuse-head.ts, what the engine runs once it has re-split at the
 * active ramps) save? Measured at each batch size, against the whole model in the same run:
 *  - the whole model, unsplit;
 *  - the backbone cut at the chosen ramps with no head ("chain");
 *  - the same chain with each head run as its own session after its segment ("heads apart", the
 *    engine's path before fusion and still its path on the prepared segments);
 *  - the chain with each head fused into its segment ("fused", one call returns both);
 * and, to see where a boundary's cost goes: one `run` of an Identity model on a 10-float-per-row
 * tensor (the fixed cost of a call through offramp's wrapper: an event-loop turn, the trip into
 * native code, tensor wrapping), the same on each ramp's tensor (minus the fixed cost: moving the
 * boundary tensor in and out of onnxruntime), each head alone (minus the fixed cost: its
 * compute), and drop mode's row selection on the boundary tensor (keeping half the rows).
 * Also the one-off cost of a re-split (split + sessions). Sessions are set up as serving sets
 * them up (no spinning). Variants alternate within each iteration so drift in the machine's load
 * hits them alike; min and median over the iterations. Nothing is asserted.
 *
 * Writes bench/results/segment-granularity-<UTC>.json and .md with the commit, whether the tree
 * was clean, the machine and the command line (--no-write to skip).
 *
 *   npx tsx bench/segment-granularity.ts [--model models/fmnist-resnet] [--ramps "0,3,5;all"] [--batches 1,16]
 *                                        [--runs 150] [--threads 2] [--no-write]
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { finishProvenance, provenance, provenanceLine } from './lib/machine.js';
import { selectRows } from '../src/engine/executor/backbone-runner.js';
import { fuseHead } from '../src/model/fuse-head.js';
import { indexGraph } from '../src/model/graph.js';
import { readManifest } from '../src/model/manifest.js';
import { decodeModel, ElemType, encodeModel, makeValueInfo, type ModelProto } from '../src/model/onnx-model.js';
import { OnnxSession, servingSessionOptions } from '../src/model/onnx-session.js';
import { SegmentChain } from '../src/model/segment-chain.js';

import { splitAtRamps } from '../src/model/split-at-ramps.js';
import type { Segment } from '../src/model/split.js';
import type { HostTensor } from '../src/model/tensor.js';
import { randomInputs } from '../ramps/random-input.js';

// Where the figures come from (commit, clean tree, machine, load), taken before anything runs.
const started = provenance();

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/fmnist-resnet' },
    ramps: { type: 'string', default: '0,3,5;all' },
    batches: { type: 'string', default: '1,16' },
    runs: { type: 'string', default: '150' },
    threads: { type: 'string', default: '2' },
    out: { type: 'string', default: 'bench/results' },
    'no-write': { type: 'boolean', default: false },
  },
});
const dir = resolve(args.model);
const batches = args.batches.split(',').map(Number);
const runs = Number(args.runs);
const threads = Number(args.threads);
const opts = servingSessionOptions(threads);
const WARMUP = 10;

const manifest = await readManifest(dir);
const modelBytes = await readFile(join(dir, manifest.model.file));
const model = decodeModel(modelBytes);
const headBytes = await Promise.all(manifest.ramps.map((r) => readFile(join(dir, r.head.file))));
const headModels = headBytes.map((b) => decodeModel(b));
const rampSets = args.ramps
  .split(';')
  .map((s) => (s.trim() === 'all' ? manifest.ramps.map((r) => r.id) : s.split(',').map(Number)));

interface Stat {
  min: number;
  median: number;
}
function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0] as number, median: s[Math.floor(s.length / 2)] as number };
}

/** A model that copies one float32 tensor of the given per-row shape: a `run` that computes nothing. */
function identityModel(rowDims: number[]): Uint8Array {
  const dims = ['batch', ...rowDims];
  return encodeModel({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'identity',
      node: [{ opType: 'Identity', input: ['x'], output: ['y'], name: 'copy' }],
      input: [makeValueInfo('x', ElemType.FLOAT, dims)],
      output: [makeValueInfo('y', ElemType.FLOAT, dims)],
    },
  });
}

/** Segments with the head of the ramp each ends at fused in, as the engine builds them. */
function fusedSegments(segments: Segment[], ids: number[]): Segment[] {
  return segments.map((s, j) => {
    const id = ids[j];
    if (id === undefined) return s;
    const ramp = manifest.ramps[id];
    if (!ramp) throw new Error(`no ramp ${id}`);
    const fused = fuseHead(s.model, headModels[id] as ModelProto, ramp.tensor, `offramp.head${id}/`);
    return {
      ...s,
      model: fused.model,
      outputs: [...s.outputs, { name: fused.probs, type: 'float32', dims: ['batch', manifest.model.classes] }],
    };
  });
}

// One-off cost of a re-split: split at the first set's ramps, fuse, create the sessions.
const resplitMs: number[] = [];
for (let i = 0; i < 3; i++) {
  const ids = rampSets[0] as number[];
  const t0 = performance.now();
  const chain = await SegmentChain.load(fusedSegments(splitAtRamps(model, manifest, ids), ids), opts);
  resplitMs.push(performance.now() - t0);
  await chain.release();
}

const whole = await OnnxSession.create(modelBytes, opts);
const heads = await Promise.all(headBytes.map((b) => OnnxSession.create(b, opts)));
const tiny = await OnnxSession.create(identityModel([10]), opts);
const sets = await Promise.all(
  rampSets.map(async (ids) => {
    const segments = splitAtRamps(model, manifest, ids);
    return {
      ids,
      chain: await SegmentChain.load(segments, opts),
      fused: await SegmentChain.load(fusedSegments(segments, ids), opts),
    };
  }),
);
const allIds = [...new Set(rampSets.flat())].sort((a, b) => a - b);
const copies = new Map<number, OnnxSession>();
for (const id of allIds) {
  const dims = manifest.ramps[id]?.dims.slice(1) as number[];
  copies.set(id, await OnnxSession.create(identityModel(dims), opts));
}

interface BatchFigures {
  batch: number;
  wholeMs: Stat;
  callMs: Stat;
  sets: {
    ramps: number[];
    chainMs: Stat;
    apartMs: Stat;
    fusedMs: Stat;
    /** (chain − whole) / ramps: one boundary, as a share of the whole model (medians). */
    boundaryShare: number;
    /** (heads apart − chain) / ramps: one head run as its own session. */
    headApartShare: number;
    /** (heads apart − whole) / ramps: one head plus its boundary, before fusion. */
    headAndBoundaryApartShare: number;
    /** (fused − whole) / ramps: one head plus its boundary, fused. */
    headAndBoundaryFusedShare: number;
  }[];
  ramps: { id: number; elemsPerRow: number; copyMs: Stat; headMs: Stat; selectHalfMs: Stat }[];
}

const figures: BatchFigures[] = [];
for (const batch of batches) {
  const index = indexGraph(model.graph ?? {});
  const inputs: Record<string, HostTensor> = randomInputs(index, { batch, other: 1 });
  const tinyInput: HostTensor = { type: 'float32', data: new Float32Array(batch * 10), dims: [batch, 10] };
  // The ramps' tensors at this batch, from one run of the finest chain.
  const pool = await sets[sets.length - 1]!.chain.run(inputs);
  const rampTensor = (id: number): HostTensor => pool[manifest.ramps[id]?.tensor as string] as HostTensor;
  const keepHalf = Array.from({ length: Math.ceil(batch / 2) }, (_, i) => i * 2).filter((r) => r < batch);

  const t = {
    whole: [] as number[],
    call: [] as number[],
    chain: sets.map(() => [] as number[]),
    apart: sets.map(() => [] as number[]),
    fused: sets.map(() => [] as number[]),
    copy: new Map(allIds.map((id) => [id, [] as number[]])),
    head: new Map(allIds.map((id) => [id, [] as number[]])),
    select: new Map(allIds.map((id) => [id, [] as number[]])),
  };
  const time = async (f: () => unknown): Promise<number> => {
    const t0 = performance.now();
    await f();
    return performance.now() - t0;
  };
  for (let i = 0; i < runs + WARMUP; i++) {
    const keep = i >= WARMUP;
    const push = (xs: number[] | undefined, ms: number): void => {
      if (keep) xs?.push(ms);
    };
    push(t.whole, await time(() => whole.run(inputs)));
    push(t.call, await time(() => tiny.run({ x: tinyInput })));
    for (const [s, set] of sets.entries()) {
      const ids = new Set(set.ids);
      push(t.chain[s], await time(() => set.chain.run(inputs)));
      push(
        t.apart[s],
        await time(() =>
          set.chain.run(inputs, async (k, p) => {
            const id = set.ids[k];
            if (id === undefined || !ids.has(id)) return;
            const ramp = manifest.ramps[id];
            await heads[id]?.run({ [ramp?.tensor as string]: p[ramp?.tensor as string] as HostTensor });
          }),
        ),
      );
      push(t.fused[s], await time(() => set.fused.run(inputs)));
    }
    for (const id of allIds) {
      const x = rampTensor(id);
      push(t.copy.get(id), await time(() => copies.get(id)?.run({ x })));
      push(t.head.get(id), await time(() => heads[id]?.run({ [manifest.ramps[id]?.tensor as string]: x })));
      push(t.select.get(id), await time(() => selectRows(x, keepHalf)));
    }
  }
  const wholeMs = stat(t.whole);
  const callMs = stat(t.call);
  figures.push({
    batch,
    wholeMs,
    callMs,
    sets: sets.map((set, s) => {
      const chainMs = stat(t.chain[s] as number[]);
      const apartMs = stat(t.apart[s] as number[]);
      const fusedMs = stat(t.fused[s] as number[]);
      const n = set.ids.length;
      const share = (a: Stat, b: Stat): number => (a.median - b.median) / n / wholeMs.median;
      return {
        ramps: set.ids,
        chainMs,
        apartMs,
        fusedMs,
        boundaryShare: share(chainMs, wholeMs),
        headApartShare: share(apartMs, chainMs),
        headAndBoundaryApartShare: share(apartMs, wholeMs),
        headAndBoundaryFusedShare: share(fusedMs, wholeMs),
      };
    }),
    ramps: allIds.map((id) => ({
      id,
      elemsPerRow: (rampTensor(id).data.length / batch) | 0,
      copyMs: stat(t.copy.get(id) as number[]),
      headMs: stat(t.head.get(id) as number[]),
      selectHalfMs: stat(t.select.get(id) as number[]),
    })),
  });
}
await Promise.all([
  whole.release(),
  tiny.release(),
  ...heads.map((h) => h.release()),
  ...[...copies.values()].map((c) => c.release()),
  ...sets.flatMap((s) => [s.chain.release(), s.fused.release()]),
]);

// Report.
const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
const ms = (s: Stat): string => `${s.median.toFixed(3)} (min ${s.min.toFixed(3)})`;
const lines: string[] = [];
lines.push(`# segment granularity: ${manifest.name}`, '');
lines.push(
  `${threads} intra-op threads, no spinning; ${runs} alternating iterations per batch size (+${WARMUP} warm-up); ` +
    "times in ms, median (min); shares are of the whole model's median in the same run.",
  '',
);
for (const f of figures) {
  lines.push(`## batch ${f.batch}`, '');
  lines.push(
    `whole model ${ms(f.wholeMs)}; one call of an Identity model on 10 floats/row ${ms(f.callMs)} = ${pct(f.callMs.median / f.wholeMs.median)}`,
    '',
  );
  lines.push(
    '| ramps | chain (no heads) | heads apart | fused | per boundary | per head apart | head+boundary apart | head+boundary fused |',
  );
  lines.push('|---|---|---|---|---|---|---|---|');
  for (const s of f.sets)
    lines.push(
      `| ${s.ramps.join(',')} | ${ms(s.chainMs)} | ${ms(s.apartMs)} | ${ms(s.fusedMs)} | ${pct(s.boundaryShare)} | ` +
        `${pct(s.headApartShare)} | ${pct(s.headAndBoundaryApartShare)} | ${pct(s.headAndBoundaryFusedShare)} |`,
    );
  lines.push('');
  lines.push(
    '| ramp | floats/row | copy in+out (minus call) | head alone | head compute (minus call) | drop: select half the rows |',
  );
  lines.push('|---|---|---|---|---|---|');
  for (const r of f.ramps)
    lines.push(
      `| ${r.id} | ${r.elemsPerRow} | ${pct((r.copyMs.median - f.callMs.median) / f.wholeMs.median)} | ${ms(r.headMs)} | ` +
        `${pct((r.headMs.median - f.callMs.median) / f.wholeMs.median)} | ${pct(r.selectHalfMs.median / f.wholeMs.median)} |`,
    );
  lines.push('');
}
const resplit = stat(resplitMs);
lines.push(
  `re-split at ramps ${rampSets[0]?.join(',')} with heads fused (split + fuse + sessions): ${ms(resplit)} ms once`,
);
console.log(lines.join('\n'));

if (!args['no-write']) {
  const stamp = new Date()
    .toISOString()
    .replace(/:/g, '-')
    .replace(/\.\d+Z$/, 'Z');
  const base = join(resolve(args.out), `segment-granularity-${stamp}`);
  const origin = finishProvenance(started);
  await mkdir(resolve(args.out), { recursive: true });
  await writeFile(
    `${base}.json`,
    `${JSON.stringify(
      {
        format: 'offramp.segment-granularity/1',
        model: manifest.name,
        threads,
        runs,
        provenance: origin,
        figures,
        resplitMs: resplit,
      },
      null,
      2,
    )}\n`,
  );
  const header = [provenanceLine(origin), ''];
  await writeFile(`${base}.md`, `${[lines[0], '', ...header, ...lines.slice(2)].join('\n')}\n`);
  console.log(`\nwrote ${base}.json and .md`);
}
