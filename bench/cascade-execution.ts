/**
 * How should a cascade tier run its members? Three ways, timed side by side on the same batches:
 *
 *   merged     one ONNX graph holding every member (src/model/cascade.ts), one session call
 *   separate   one session per member, called in turn on one thread (cascade.execution: separate)
 *   parallel   one worker thread per member, the batch posted to all at once, done when the last
 *              answers — members truly side by side, paying a message and a copy each way
 *
 * At 1 intra-op thread per session (the serving default), batch sizes 1, 4 and 16, text models at
 * the 256-id maximum (the typical padded length). Prints medians with the spread of repeats as
 * ratios to `merged` in the same run; writes bench/results/cascade-execution-<UTC>.json and .md.
 *
 *   npx tsx bench/cascade-execution.ts [--model models/fmnist-resnet] [--members a.onnx,b.onnx,c.onnx]
 *                                      [--runs 300] [--repeats 3] [--out bench/results]
 *
 * Without --members, the bundled members of the model's task (bench/lib/cascades.ts).
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Worker } from 'node:worker_threads';
import { readManifest } from '../src/model/manifest.js';
import { buildTierModels, memberOutput } from '../src/model/cascade.js';
import { OnnxSession, servingSessionOptions } from '../src/model/onnx-session.js';
import { profileFeeds } from '../src/engine/executor/cascade-runner.js';
import { spawnWorker } from '../src/engine/spawn-worker.js';
import type { BatchInput } from '../src/engine/backend.js';
import { finishProvenance, provenance, provenanceLine, writeResultPair } from './lib/machine.js';
import { cascadeTaskFor } from './lib/cascades.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/fmnist-resnet' },
    members: { type: 'string' },
    runs: { type: 'string', default: '300' },
    repeats: { type: 'string', default: '3' },
    out: { type: 'string', default: 'bench/results' },
  },
});

const BATCHES = [1, 4, 16];
const TEXT_LENGTH = 256;
const started = new Date();
const origin = provenance();
const modelDir = resolve(args.model);
const manifest = await readManifest(modelDir);
const members = args.members
  ? args.members.split(',').map((p) => resolve(p))
  : Object.values(cascadeTaskFor(manifest.name).members).map((p) => resolve(p));
const runs = Number(args.runs);
const repeats = Number(args.repeats);
const inputs = manifest.model.inputs.map((io) => io.name);
const spec = { members, rule: 'vote' as const };
const options = servingSessionOptions(1);

const merged = await OnnxSession.create((await buildTierModels(spec, inputs, 'merged'))[0] as Uint8Array, options);
const separate = await Promise.all(
  (await buildTierModels(spec, inputs, 'separate')).map((bytes) => OnnxSession.create(bytes, options)),
);
const workers = await Promise.all(
  (await buildTierModels(spec, inputs, 'separate')).map((bytes, i) => startMemberWorker(bytes, i)),
);

type Way = 'merged' | 'separate' | 'parallel';
const ways: Record<Way, (feeds: BatchInput) => Promise<unknown>> = {
  merged: (feeds) =>
    merged.run(
      feeds,
      members.map((_, i) => memberOutput(i)),
    ),
  separate: async (feeds) => {
    for (const [i, s] of separate.entries()) await s.run(feeds, [memberOutput(i)]);
  },
  parallel: (feeds) => Promise.all(workers.map((w) => w.run(feeds))),
};

/** Median ms per call of each way, per batch size, per repeat (the ways take turns within a repeat). */
const medians: Record<Way, Record<number, number[]>> = { merged: {}, separate: {}, parallel: {} };
for (let rep = 0; rep < repeats; rep++) {
  for (const batch of BATCHES) {
    const feeds = profileFeeds(manifest, batch, TEXT_LENGTH);
    for (const way of Object.keys(ways) as Way[]) {
      const times: number[] = [];
      for (let i = 0; i < runs + 20; i++) {
        const t0 = performance.now();
        await ways[way](feeds);
        if (i >= 20) times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      (medians[way][batch] ??= []).push(times[Math.floor(times.length / 2)] as number);
    }
  }
}
for (const w of workers) await w.close();

const lines: string[] = [];
const row = (cells: string[]): string => `| ${cells.join(' | ')} |`;
lines.push(`# Cascade tier execution: ${manifest.name}, ${members.length} members`, '');
lines.push(provenanceLine(origin), '');
lines.push(`Members: ${members.map((m) => m.replace(`${process.cwd()}/`, '')).join(', ')}.`, '');
lines.push(
  `Median ms per call over ${runs} calls, ${repeats} repeats (min–max of the repeats' medians); ratio to merged in the same repeat.` +
    (manifest.model.text ? ` Text rows of ${TEXT_LENGTH} ids.` : ''),
  '',
);
lines.push(row(['batch', 'merged ms', 'separate ms', 'separate / merged', 'parallel ms', 'parallel / merged']));
lines.push(row(['---', '---', '---', '---', '---', '---']));
const span = (xs: number[]): string =>
  `${median(xs).toFixed(3)} (${Math.min(...xs).toFixed(3)}–${Math.max(...xs).toFixed(3)})`;
const ratios = (way: Way, batch: number): number[] =>
  (medians[way][batch] as number[]).map((x, i) => x / (medians.merged[batch]?.[i] as number));
for (const batch of BATCHES) {
  lines.push(
    row([
      String(batch),
      span(medians.merged[batch] as number[]),
      span(medians.separate[batch] as number[]),
      span(ratios('separate', batch)),
      span(medians.parallel[batch] as number[]),
      span(ratios('parallel', batch)),
    ]),
  );
}
const report = lines.join('\n');
console.log(report);
const base = await writeResultPair(resolve(args.out), 'cascade-execution', started, report, {
  provenance: finishProvenance(origin),
  model: manifest.name,
  members,
  runs,
  repeats,
  medians,
});
console.log(`wrote ${base}.md and .json`);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/** A worker thread holding member `index`'s session (lib/member-worker.ts): run posts a batch and waits for its answer. */
async function startMemberWorker(
  model: Uint8Array,
  index: number,
): Promise<{ run(feeds: BatchInput): Promise<void>; close(): Promise<void> }> {
  const worker: Worker = spawnWorker(import.meta.url, 'lib/member-worker', { model, index });
  await new Promise<void>((ok, fail) => {
    worker.once('message', () => ok());
    worker.once('error', fail);
  });
  return {
    run: (feeds) =>
      new Promise<void>((ok) => {
        worker.once('message', () => ok());
        worker.postMessage(feeds);
      }),
    close: async () => {
      await worker.terminate();
    },
  };
}
