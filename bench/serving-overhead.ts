/**
 * How much does offramp's serving path cost? A plain onnxruntime loop against offramp's vanilla
 * path in-process and over HTTP, with the serving thread's event-loop lag (bench/lib/serving-overhead.ts
 * says how). Prints throughput as ratios against the raw loop measured in the same run. Nothing
 * here is asserted; it reports. `npm run bench` includes it.
 *
 *   npx tsx bench/serving-overhead.ts [--model models/fmnist-resnet] [--seconds 8] [--batch 16] [--concurrency 64]
 *                                     [--workers 1] [--threads 2] [--raw-threads workers×threads] [--json]
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { measureServingOverhead } from './lib/serving-overhead.js';

const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/fmnist-resnet' },
    data: { type: 'string', default: 'models/data/fashion-mnist/test-images.npy.gz' },
    seconds: { type: 'string', default: '8' },
    batch: { type: 'string', default: '16' },
    concurrency: { type: 'string', default: '64' },
    threads: { type: 'string', default: '2' },
    workers: { type: 'string', default: '1' },
    'raw-threads': { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});

const result = await measureServingOverhead(
  {
    modelDir: resolve(args.model),
    data: args.data,
    seconds: Number(args.seconds),
    batch: Number(args.batch),
    concurrency: Number(args.concurrency),
    workers: Number(args.workers),
    threads: Number(args.threads),
    ...(args['raw-threads'] !== undefined ? { rawThreads: Number(args['raw-threads']) } : {}),
  },
  (line) => {
    if (!args.json) process.stderr.write(`${line}\n`);
  },
);
if (args.json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
