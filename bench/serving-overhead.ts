/**
 * How much does offramp's serving path cost? A plain onnxruntime loop against offramp's vanilla
 * path in-process and over HTTP, with the serving thread's event-loop lag, then one request's costs
 * at batch 1: the backbone's compute, the serving path's fixed cost and (text models) tokenizing
 * (bench/lib/serving-overhead.ts says how). Prints throughput as ratios against the raw loop
 * measured in the same run. Nothing here is asserted; it reports. `npm run bench` includes it.
 * The test data follows the model (bench/lib/workload.ts): images for an image model, the test
 * emails for a text model such as models/spam-bert; `--data` names other rows of the same kind.
 *
 *   npx tsx bench/serving-overhead.ts [--model models/fmnist-resnet] [--data FILE] [--seconds 8] [--batch 16] [--concurrency 64]
 *                                     [--workers 1] [--threads 2] [--raw-threads workers×threads] [--json]
 *                                     [--out bench/results]
 *
 * Writes bench/results/serving-overhead-<UTC start>.json and .md, with the commit, whether the
 * tree was clean, the machine, its load and the exact command line, so a figure quoted from it can
 * be traced to what ran.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { finishProvenance, provenance, provenanceLine } from './lib/machine.js';
import { measureServingOverhead, type OverheadResult } from './lib/serving-overhead.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/fmnist-resnet' },
    data: { type: 'string' },
    seconds: { type: 'string', default: '8' },
    batch: { type: 'string', default: '16' },
    concurrency: { type: 'string', default: '64' },
    threads: { type: 'string', default: '2' },
    workers: { type: 'string', default: '1' },
    'raw-threads': { type: 'string' },
    json: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/results' },
  },
});

const started = new Date();
const origin = provenance();
const lines: string[] = [];
const result: OverheadResult = await measureServingOverhead(
  {
    modelDir: resolve(args.model),
    ...(args.data !== undefined ? { data: args.data } : {}),
    seconds: Number(args.seconds),
    batch: Number(args.batch),
    concurrency: Number(args.concurrency),
    workers: Number(args.workers),
    threads: Number(args.threads),
    ...(args['raw-threads'] !== undefined ? { rawThreads: Number(args['raw-threads']) } : {}),
  },
  (line) => {
    lines.push(line);
    if (!args.json) process.stderr.write(`${line}\n`);
  },
);
const stem = `serving-overhead-${started
  .toISOString()
  .replace(/:/g, '-')
  .replace(/\.\d+Z$/, 'Z')}`;
const record = {
  format: 'offramp.serving-overhead/1',
  started_at: started.toISOString(),
  finished_at: new Date().toISOString(),
  provenance: finishProvenance(origin),
  model: args.model,
  result,
};
await mkdir(args.out, { recursive: true });
const base = join(args.out, stem);
await writeFile(`${base}.json`, JSON.stringify(record, null, 1) + '\n');
await writeFile(
  `${base}.md`,
  [
    `# offramp serving-path overhead — ${args.model} — ${record.started_at}`,
    '',
    provenanceLine(record.provenance),
    '',
    'Rows per second; ratios against the raw onnxruntime loop measured in the same run (bench/lib/serving-overhead.ts says how).',
    '',
    ...lines.map((l) => `- ${l}`),
    '',
  ].join('\n'),
);
if (args.json) process.stdout.write(JSON.stringify(record, null, 2) + '\n');
else process.stderr.write(`results: ${base}.json, ${base}.md\n`);
