/**
 * `offramp prepare MODEL.onnx --data BOOTSTRAP.npy --out DIR` (a text model:
 * `--data TEXTS.jsonl.gz --tokenizer tokenizer.json`): split the model at every candidate cut,
 * train and calibrate one ramp head per candidate on the backbone's own predictions, profile
 * latency, and write a prepared model directory (ramps/prepare.ts).
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { DEFAULT_PREPARE_OPTIONS, prepareModel, type PrepareProgress } from '../../ramps/prepare.js';
import { HEAD_KINDS } from '../../ramps/heads/head-kinds.js';
import type { HeadKind, PreparedManifest } from '../model/manifest.js';
import { CliError } from './errors.js';
import {
  collectList,
  formatPercent,
  formatTable,
  parseFraction,
  parsePositiveInt,
  writeJson,
  writeOut,
} from './format.js';
import { readModelFile, requireFile } from './model-file.js';
import { createProgress, type Progress } from './progress.js';

interface PrepareCliOptions {
  data: string;
  tokenizer?: string;
  maxLength?: number;
  out: string;
  limit?: number;
  maxBatch: number;
  heads?: string[];
  budget: number;
  epochs: number;
  hidden: number;
  threads: number;
  output?: string;
  labels?: string;
  name?: string;
  profileRuns: number;
  seed: number;
  json?: boolean;
}

const PHASE_LABELS: Record<PrepareProgress['phase'], string> = {
  analyse: 'analysing graph',
  features: 'caching features',
  train: 'training heads',
  evaluate: 'evaluating heads',
  profile: 'profiling latency',
  write: 'writing',
};

function parseNonNegativeInt(value: string): number {
  const x = Number(value);
  if (!Number.isInteger(x) || x < 0) throw new InvalidArgumentError(`expected a whole number ≥ 0, got '${value}'.`);
  return x;
}

/** One progress bar per phase; phases report absolute counts, bars want increments. */
function progressReporter(quiet: boolean): (event: PrepareProgress) => void {
  let phase: PrepareProgress['phase'] | undefined;
  let bar: Progress | undefined;
  let last = 0;
  return (event) => {
    if (event.phase !== phase) {
      bar?.done();
      phase = event.phase;
      bar = createProgress(PHASE_LABELS[event.phase], event.total, process.stderr, { quiet });
      last = 0;
    }
    bar?.tick(event.done - last, event.detail);
    last = event.done;
    if (event.phase === 'write' && event.done === event.total) bar?.done();
  };
}

function printSummary(manifest: PreparedManifest, out: string): void {
  const p = manifest.profile;
  const fullAtOne = p.fullModelMs[0] ?? Number.NaN;
  const rows = manifest.ramps.map((r) => {
    const trials = r.head.trials
      .map((t) => `${t.kind} ${formatPercent(t.agreement)}/${formatPercent(t.exitFraction)}`)
      .join(', ');
    return [
      String(r.id),
      r.tensor,
      formatPercent(r.computeBefore),
      r.head.kind,
      formatPercent(r.agreement),
      formatPercent(r.soloExit.exitFraction),
      `${(p.headMs[r.id]?.[0] ?? Number.NaN).toFixed(3)}`,
      trials,
    ];
  });
  const lines = [
    `prepared ${manifest.name} -> ${out}`,
    `${manifest.segments.length} segments, ${manifest.ramps.length} ramps, ${manifest.model.classes} classes; bootstrap ${manifest.bootstrap.rows} rows ` +
      `(train ${manifest.bootstrap.trainRows}, calibration ${manifest.bootstrap.calibrationRows}, evaluation ${manifest.bootstrap.evaluationRows})`,
    '',
    formatTable(
      [
        'ramp',
        'tensor',
        'compute',
        'head',
        'agreement',
        `exit@${formatPercent(manifest.bootstrap.budget)}`,
        'head ms',
        'kinds tried (calibration agreement/exit)',
      ],
      rows,
      ['right', 'left', 'right', 'left', 'right', 'right', 'right', 'left'],
    ),
    '',
    `agreement and exit fractions are on the ${manifest.bootstrap.evaluationRows} evaluation rows, with the exported ONNX heads;` +
      ` whole model ${fullAtOne.toFixed(2)} ms at batch 1 (${p.intraOpThreads} intra-op threads).`,
  ];
  writeOut(lines.join('\n'));
}

async function prepare(modelPath: string, options: PrepareCliOptions): Promise<void> {
  await readModelFile(modelPath); // friendly errors for a missing or non-ONNX file
  await requireFile(options.data, 'data');
  if (options.tokenizer) await requireFile(options.tokenizer, 'tokenizer');
  const headKinds = options.heads?.map((k) => {
    if (!(HEAD_KINDS as readonly string[]).includes(k))
      throw new CliError(`unknown head kind '${k}' (choose from ${HEAD_KINDS.join(', ')})`);
    return k as HeadKind;
  });
  let labels: string[] | undefined;
  if (options.labels) {
    await requireFile(options.labels, 'labels');
    labels = (await readFile(options.labels, 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '');
  }
  const manifest = await prepareModel({
    modelPath,
    dataPath: options.data,
    ...(options.tokenizer ? { tokenizerPath: options.tokenizer } : {}),
    ...(options.maxLength ? { maxLength: options.maxLength } : {}),
    outDir: options.out,
    ...(options.limit ? { limit: options.limit } : {}),
    maxBatch: options.maxBatch,
    ...(headKinds ? { headKinds } : {}),
    budget: options.budget,
    epochs: options.epochs,
    hidden: options.hidden,
    seed: options.seed,
    intraOpThreads: options.threads,
    ...(options.output ? { output: options.output } : {}),
    ...(labels ? { labels } : {}),
    ...(options.name ? { name: options.name } : {}),
    profileRuns: options.profileRuns,
    onProgress: progressReporter(options.json === true),
  });
  if (labels && labels.length !== manifest.model.classes) {
    throw new CliError(
      `${options.labels} has ${labels.length} labels but the model has ${manifest.model.classes} classes`,
    );
  }
  if (options.json) writeJson(manifest);
  else printSummary(manifest, options.out);
}

export function registerPrepareCommand(program: Command): void {
  const d = DEFAULT_PREPARE_OPTIONS;
  program
    .command('prepare')
    .description(
      'split a model at its cut points, train one exit-ramp head per candidate on bootstrap inputs, profile latency, write a prepared model directory',
    )
    .argument(
      '<model>',
      'ONNX classifier (one input, or a text model: input_ids, attention_mask[, token_type_ids]; its first output, or --output, holds logits or probabilities)',
    )
    .requiredOption(
      '--data <file>',
      'bootstrap inputs, no labels needed: .npy or .npy.gz, one row per example (uint8 pixels are scaled to [0,1]); ' +
        'for a text model JSON Lines (.jsonl or .jsonl.gz) of {"text": ...}',
    )
    .option('--tokenizer <file>', "a text model's tokenizer.json (with JSON Lines data); copied into the directory")
    .option(
      '--max-length <n>',
      "longest text row in ids, special tokens included (default: the tokenizer's truncation length, else 512)",
      parsePositiveInt,
    )
    .requiredOption('--out <dir>', 'directory to write (manifest.json, model.onnx, segments/, heads/)')
    .option('--limit <n>', 'use only the first n rows of the data', parsePositiveInt)
    .option('--max-batch <n>', 'profile batch sizes 1..n', parsePositiveInt, d.maxBatch)
    .option(
      '--heads <kinds>',
      `head kinds to try (comma-separated; ${HEAD_KINDS.join(', ')}); default: all that fit`,
      collectList,
    )
    .option('--budget <fraction>', 'disagreement budget for the reported solo-exit fractions', parseFraction, d.budget)
    .option('--epochs <n>', 'training epochs per head', parsePositiveInt, d.epochs)
    .option('--hidden <n>', 'hidden units of heads that have a hidden layer', parsePositiveInt, d.hidden)
    .option(
      '--threads <n>',
      'onnxruntime intra-op threads (what serving will use; 0 = all cores)',
      parseNonNegativeInt,
      d.intraOpThreads,
    )
    .option('--output <name>', 'model output the ramps imitate (default: the first output)')
    .option('--labels <file>', 'class names, one per line, stored in the manifest')
    .option('--name <name>', 'model name in the manifest (default: the file name)')
    .option('--profile-runs <n>', 'timed runs per latency measurement', parsePositiveInt, d.profileRuns)
    .option('--seed <n>', 'seed for data split, initialisation and shuffling', parseNonNegativeInt, d.seed)
    .option('--json', 'print the manifest as JSON instead of a summary')
    .action(async (modelPath: string, options: PrepareCliOptions) => {
      await prepare(modelPath, options);
    });
}
