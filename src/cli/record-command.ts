/**
 * `offramp record --model DIR --data INPUTS.npy --out TRACE.jsonl`: one feedback record per
 * input row with every ramp active (format in src/engine/recorder.ts). A text model takes
 * `--data TEXTS.jsonl.gz`, tokenized with the prepared directory's tokenizer; the records' own
 * `label` fields, mapped through the manifest's labels, are the true labels.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { readNpy } from '../model/npy.js';
import { readManifest, type PreparedManifest } from '../model/manifest.js';
import { InputRows, type RowSource } from '../model/input-rows.js';
import { readTextRecords, textLabels, TextRows } from '../model/text-rows.js';
import { TextTokenizer } from '../model/text-tokenizer.js';
import { isTextData } from '../../ramps/text-inputs.js';
import { recordTrace } from '../engine/recorder.js';
import { EXIT_POLICIES, isExitPolicy, type ExitPolicyKind } from '../../tuner/exit-policy.js';
import { formatPercent, parsePositiveInt, writeJson, writeOut } from './format.js';
import { createProgress } from './progress.js';
import { requireFile } from './model-file.js';
import { CliError } from './errors.js';

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

/** The rows to record, and their true labels as class indices when the data has them. */
async function recordRows(
  manifest: PreparedManifest,
  options: RecordCliOptions,
): Promise<{ rows: RowSource; labels?: Int32Array }> {
  const text = manifest.model.text;
  if (!text) {
    if (isTextData(options.data))
      throw new CliError(
        `${options.model} is not a text model: give its inputs as .npy or .npy.gz, not ${options.data}`,
      );
    const spec = manifest.model.inputs[0];
    if (!spec) throw new CliError(`${options.model}: manifest declares no input`);
    const rows = new InputRows(await readNpy(options.data), spec, options.limit);
    if (!options.labels) return { rows };
    const labels = await readNpy(options.labels);
    if ((labels.shape[0] ?? 0) < rows.rows)
      throw new CliError(`${options.labels} holds ${labels.shape[0]} labels but the data holds ${rows.rows} rows`);
    return { rows, labels: Int32Array.from(labels.data.subarray(0, rows.rows), Number) };
  }
  if (!isTextData(options.data))
    throw new CliError(
      `${options.model} is a text model: give its inputs as JSON Lines (.jsonl or .jsonl.gz), not ${options.data}`,
    );
  if (options.labels)
    throw new CliError(
      `--labels is for .npy data; a text model's labels are the records' "label" fields in ${options.data}`,
    );
  const tokenizer = await TextTokenizer.load(join(options.model, text.tokenizer), text.maxLength);
  const records = (await readTextRecords(options.data)).slice(0, options.limit);
  const rows = new TextRows(
    records.map((r) => r.text),
    tokenizer,
    text,
  );
  if (records.every((r) => r.label === undefined)) return { rows };
  const names = manifest.model.labels;
  if (!names) throw new CliError(`${options.data} has labels but ${options.model} has no label names to map them to`);
  return { rows, labels: textLabels(records, names, options.data) };
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
    .requiredOption(
      '--data <file>',
      'inputs as .npy or .npy.gz (uint8 pixels are scaled to [0,1]); for a text model JSON Lines (.jsonl or .jsonl.gz) of {"text", "label"?}',
    )
    .requiredOption('--out <file>', 'trace to write (.jsonl)')
    .option('--labels <file>', 'true labels (.npy), stored in each record (text records carry their own)')
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
      const { rows, labels } = await recordRows(manifest, options);
      const progress = createProgress('recording', rows.rows, process.stderr, { quiet: options.json === true });
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
