/**
 * `offramp record --model DIR --data INPUTS.npy --out TRACE.jsonl`: one feedback record per
 * input row with every ramp active (format in src/engine/recorder.ts).
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { readNpy } from '../model/npy.js';
import { InputRows } from '../model/input-rows.js';
import { readManifest } from '../model/manifest.js';
import { recordTrace } from '../engine/recorder.js';
import { EXIT_POLICIES, isExitPolicy, type ExitPolicyKind } from '../../tuner/exit-policy.js';
import { formatPercent, parsePositiveInt, writeJson, writeOut } from './format.js';
import { createProgress } from './progress.js';
import { requireFile } from './model-file.js';

interface RecordCliOptions {
  model: string;
  data: string;
  labels?: string;
  out: string;
  batch: number;
  policy: ExitPolicyKind;
  limit?: number;
  threads: number;
  json?: boolean;
}

function parsePolicy(value: string): ExitPolicyKind {
  if (!isExitPolicy(value))
    throw new InvalidArgumentError(`expected one of ${EXIT_POLICIES.join(', ')}, got '${value}'.`);
  return value;
}

export function registerRecordCommand(program: Command): void {
  program
    .command('record')
    .description(
      'run inputs through a prepared model with every ramp active and write one feedback record per row (JSON Lines)',
    )
    .requiredOption('--model <dir>', 'prepared model directory (from offramp prepare)')
    .requiredOption('--data <file>', 'inputs as .npy or .npy.gz (uint8 pixels are scaled to [0,1])')
    .requiredOption('--out <file>', 'trace to write (.jsonl)')
    .option('--labels <file>', 'true labels (.npy), stored in each record')
    .option('--batch <n>', 'batch size', parsePositiveInt, 16)
    .option(
      '--policy <policy>',
      `score each ramp under this exit policy (${EXIT_POLICIES.join(', ')})`,
      parsePolicy,
      'confidence',
    )
    .option('--limit <n>', 'only the first n rows', parsePositiveInt)
    .option('--threads <n>', 'onnxruntime intra-op threads', parsePositiveInt, 2)
    .option('--json', 'print the summary as JSON')
    .action(async (options: RecordCliOptions) => {
      await requireFile(`${options.model}/manifest.json`, 'prepared model (manifest.json)');
      await requireFile(options.data, 'data');
      if (options.labels) await requireFile(options.labels, 'labels');
      const manifest = await readManifest(options.model);
      const spec = manifest.model.inputs[0];
      if (!spec) throw new Error(`${options.model}: manifest declares no input`);
      const rows = new InputRows(await readNpy(options.data), spec, options.limit);
      const labels = options.labels
        ? Int32Array.from((await readNpy(options.labels)).data as ArrayLike<number | bigint>, Number)
        : undefined;
      const total = rows.rows;
      const progress = createProgress('recording', total, process.stderr, { quiet: options.json === true });
      let last = 0;
      const summary = await recordTrace({
        modelDir: options.model,
        rows,
        ...(labels ? { labels } : {}),
        out: options.out,
        batchSize: options.batch,
        policy: options.policy,
        intraOpThreads: options.threads,
        onProgress: (done) => {
          progress.tick(done - last);
          last = done;
        },
      });
      progress.done();
      if (options.json) {
        writeJson(summary);
        return;
      }
      const agreement = Object.entries(summary.agreement)
        .map(([id, a]) => `ramp ${id} ${formatPercent(a)}`)
        .join(', ');
      writeOut(
        [
          `wrote ${summary.rows} records to ${options.out}`,
          `agreement with the final layer: ${agreement}`,
          ...(summary.accuracy !== undefined
            ? [`full-model accuracy against the labels: ${formatPercent(summary.accuracy)}`]
            : []),
        ].join('\n'),
      );
    });
}
