/**
 * `offramp profile --model DIR`: re-measures a prepared model's latency profile on this machine
 * (ramps/reprofile.ts) and prints the old and new figures at a few batch sizes.
 */
import type { Command } from 'commander';
import { reprofilePrepared } from '../../ramps/reprofile.js';
import type { LatencyProfile } from '../model/manifest.js';
import { formatTable, parsePositiveInt, writeJson, writeOut } from './format.js';
import { requireFile } from './model-file.js';
import { createProgress } from './progress.js';

interface ProfileCliOptions {
  model: string;
  threads: number;
  maxBatch?: number;
  runs: number;
  rounds: number;
  json?: boolean;
}

function sum(series: number[][], i: number): number {
  return series.reduce((s, row) => s + (row[i] ?? 0), 0);
}

function rows(before: LatencyProfile, after: LatencyProfile): string[][] {
  const out: string[][] = [];
  for (const size of [1, 4, 8, 16]) {
    const i = after.batchSizes.indexOf(size);
    const j = before.batchSizes.indexOf(size);
    if (i < 0) continue;
    const ms = (x: number | undefined): string => (x === undefined || j < 0 ? '-' : x.toFixed(3));
    out.push([
      String(size),
      ms(j >= 0 ? before.fullModelMs[j] : undefined),
      (after.fullModelMs[i] as number).toFixed(3),
      j >= 0 ? sum(before.segmentMs, j).toFixed(3) : '-',
      sum(after.segmentMs, i).toFixed(3),
      j >= 0 ? sum(before.headMs, j).toFixed(3) : '-',
      sum(after.headMs, i).toFixed(3),
    ]);
  }
  return out;
}

export function registerProfileCommand(program: Command): void {
  program
    .command('profile')
    .description(
      "re-measure a prepared model's latency profile (segments, heads, whole model per batch size) on this machine and write it into its manifest",
    )
    .requiredOption('--model <dir>', 'prepared model directory')
    .option(
      '--threads <n>',
      'onnxruntime intra-op threads: what serving uses (server.intra_op_threads)',
      parsePositiveInt,
      2,
    )
    .option(
      '--max-batch <n>',
      'profile batch sizes 1..n (default: the sizes already in the manifest)',
      parsePositiveInt,
    )
    .option('--runs <n>', 'timed runs per measurement, at most', parsePositiveInt, 50)
    .option(
      '--rounds <n>',
      'passes over every batch size; each figure is the smallest pass median',
      parsePositiveInt,
      3,
    )
    .option('--json', 'print the old and new profiles as JSON')
    .action(async (options: ProfileCliOptions) => {
      await requireFile(`${options.model}/manifest.json`, 'prepared model (manifest.json)');
      let progress: ReturnType<typeof createProgress> | undefined;
      let last = 0;
      const { before, after } = await reprofilePrepared(options.model, {
        intraOpThreads: options.threads,
        runs: options.runs,
        rounds: options.rounds,
        ...(options.maxBatch ? { maxBatch: options.maxBatch } : {}),
        onStep: (done, total) => {
          progress ??= createProgress('profiling latency', total, process.stderr, { quiet: options.json === true });
          progress.tick(done - last);
          last = done;
          if (done === total) progress.done();
        },
      });
      if (options.json) {
        writeJson({ before, after });
        return;
      }
      writeOut(
        [
          `profiled ${options.model} with ${options.threads} intra-op threads (${after.method}); manifest.json updated`,
          '',
          formatTable(
            ['batch', 'whole ms (was)', 'whole ms', 'segments ms (was)', 'segments ms', 'heads ms (was)', 'heads ms'],
            rows(before, after),
            ['right', 'right', 'right', 'right', 'right', 'right', 'right'],
          ),
        ].join('\n'),
      );
    });
}
