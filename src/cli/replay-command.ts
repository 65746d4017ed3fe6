/**
 * `offramp replay --trace TRACE.jsonl [--tuner guarded|apparate|static] [--budget 0.01]
 * [--confidence 0.95] [--window 1000] [--start calibrated|never] [--model DIR] [--json]`: replays a recorded trace (`offramp record`)
 * through a tuner as if it arrived live and reports, per window and overall, the realised
 * disagreement, the savings the latency profile gives for the exits taken, and the
 * hindsight-optimal savings. The file is read here; the replay itself is tuner/replay.ts (pure).
 *
 * The guarded tuner starts where a served one starts by default (`tuner.start: calibrated`): at
 * thresholds calibrated from the ramps' solo-exit curves, which the trace header carries when
 * `offramp record` wrote them, or `--model DIR` reads from the prepared model the trace was
 * recorded from (older traces). Without either, it starts at "never" and says so.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { parseTraceHeader, parseTraceRecord, replayTrace, type ReplayReport } from '../../tuner/replay.js';
import {
  isTunerKind,
  REPLAYABLE_TUNER_KINDS,
  TUNER_STARTS,
  type TunerKind,
  type TunerStart,
} from '../../tuner/tuner.js';
import { readManifest } from '../model/manifest.js';
import { defaultServingConfig, loadServingConfig, type ModelConfig } from '../config/index.js';
import { servingPlan, tracePlanningView } from '../engine/exit-plan.js';
import { servedRampSet } from '../engine/live-tuning.js';
import { EXIT_MODES, type ExitMode } from '../../tuner/exit-policy.js';
import type { FeedbackRecord } from '../../tuner/feedback-record.js';
import { seededRandom } from '../model/numeric.js';
import { CliError } from './errors.js';
import { formatPercent, formatTable, parseFraction, parsePositiveInt, writeJson, writeOut } from './format.js';

interface ReplayCliOptions {
  trace: string;
  config?: string;
  servedModel?: string;
  tuner?: TunerKind;
  budget?: number;
  confidence?: number;
  window?: number;
  patience?: number;
  mode?: ExitMode;
  fixedRamps?: boolean;
  ramps?: number[];
  thresholds?: Map<number, number>;
  start?: TunerStart;
  model?: string;
  apparateBatches: number;
  hindsight: boolean;
  resample?: number;
  seed: number;
  json?: boolean;
}

function parseTuner(value: string): TunerKind {
  if (!isTunerKind(value))
    throw new InvalidArgumentError(`expected one of ${REPLAYABLE_TUNER_KINDS.join(', ')}, got '${value}'.`);
  return value;
}

function parseMode(value: string): ExitMode {
  if (!(EXIT_MODES as readonly string[]).includes(value))
    throw new InvalidArgumentError(`expected one of ${EXIT_MODES.join(', ')}, got '${value}'.`);
  return value as ExitMode;
}

/** The SLO entry replay takes its settings from: --config's entry for the model, or the SLO defaults. */
async function servedModelConfig(options: ReplayCliOptions, traceModel: string): Promise<ModelConfig> {
  const name = options.servedModel ?? traceModel;
  if (!options.config) {
    const models = defaultServingConfig({}).models;
    // Every entry has the same defaults but its name and path: any will do for another model.
    return models.find((m) => m.name === name) ?? (models[0] as ModelConfig);
  }
  const config = await loadServingConfig(options.config, { env: {} }).catch((err: Error) => {
    throw new CliError(`--config ${options.config}: ${err.message}`);
  });
  const entry = config.models.find((m) => m.name === name);
  if (!entry)
    throw new CliError(
      `--config ${options.config}: no model named '${name}' (models: ${config.models.map((m) => m.name).join(', ')}); give --served-model`,
    );
  return entry;
}

function parseStart(value: string): TunerStart {
  if (!(TUNER_STARTS as readonly string[]).includes(value))
    throw new InvalidArgumentError(`expected one of ${TUNER_STARTS.join(', ')}, got '${value}'.`);
  return value as TunerStart;
}

type TraceHeader = ReturnType<typeof parseTraceHeader>;

/** The header with each ramp's solo-exit curve from the prepared model in `dir` (a trace recorded before headers carried them). */
async function withManifestCurves(header: TraceHeader, dir: string): Promise<TraceHeader> {
  const manifest = await readManifest(dir).catch((err: Error) => {
    throw new CliError(`--model ${dir}: ${err.message}`);
  });
  if (manifest.name !== header.model)
    throw new CliError(
      `--model ${dir}: the trace is of model '${header.model}', the prepared model is '${manifest.name}'`,
    );
  return {
    ...header,
    ramps: header.ramps.map((r) => {
      const entry = manifest.ramps.find((m) => m.id === r.id);
      if (!entry || Math.abs(entry.computeBefore - r.computeBefore) > 1e-9)
        throw new CliError(`--model ${dir}: its ramp ${r.id} is not the trace's (re-prepared since the recording?)`);
      return { ...r, soloCurve: entry.soloCurve };
    }),
  };
}

function parseBudget(value: string): number {
  const x = parseFraction(value);
  if (x <= 0 || x > 0.5)
    throw new InvalidArgumentError(`expected a budget in (0, 0.5] (e.g. 0.01 or 1%), got '${value}'.`);
  return x;
}

function parseConfidence(value: string): number {
  const x = parseFraction(value);
  if (x < 0.5 || x >= 1)
    throw new InvalidArgumentError(`expected a confidence in [0.5, 1) (e.g. 0.95 or 95%), got '${value}'.`);
  return x;
}

function parseRampList(value: string): number[] {
  const ids = value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (ids.length === 0 || !ids.every((s) => /^\d+$/.test(s)))
    throw new InvalidArgumentError(`expected ramp ids like 0,2,5, got '${value}'.`);
  return ids.map(Number);
}

/** `0=0.95,3=0.9`: ramp id = threshold on the policy score. */
function parseThresholds(value: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const part of value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')) {
    const match = /^(\d+)=(-?[\d.]+(?:e-?\d+)?)$/.exec(part);
    if (!match || !Number.isFinite(Number(match[2])))
      throw new InvalidArgumentError(`expected id=threshold pairs like 0=0.95,3=0.9, got '${part}'.`);
    out.set(Number(match[1]), Number(match[2]));
  }
  if (out.size === 0) throw new InvalidArgumentError(`expected id=threshold pairs like 0=0.95,3=0.9, got '${value}'.`);
  return out;
}

function isGzip(bytes: Buffer): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Reads a trace file (plain or gzipped JSONL): header line, then one record per line. Errors name the file and line. */
export async function readTrace(
  path: string,
): Promise<{ header: ReturnType<typeof parseTraceHeader>; records: FeedbackRecord[] }> {
  const bytes = await readFile(path).catch((err: NodeJS.ErrnoException) => {
    throw new CliError(err.code === 'ENOENT' ? `${path}: no such trace file` : `${path}: ${err.message}`);
  });
  // Gzipped traces (.jsonl.gz, as kept in test/fixtures/traces/) are recognised by their magic bytes.
  const text = (isGzip(bytes) ? gunzipSync(bytes) : bytes).toString('utf8');
  const lines = text.split('\n');
  const parse = (line: string, index: number): unknown => {
    try {
      return JSON.parse(line) as unknown;
    } catch {
      throw new CliError(`${path}: line ${index + 1} is not JSON`);
    }
  };
  const first = lines.findIndex((l) => l.trim() !== '');
  if (first < 0) throw new CliError(`${path}: empty trace file`);
  try {
    const header = parseTraceHeader(parse(lines[first] as string, first));
    const records: FeedbackRecord[] = [];
    for (let i = first + 1; i < lines.length; i++) {
      const line = lines[i] as string;
      if (line.trim() === '') continue;
      records.push(parseTraceRecord(parse(line, i), i + 1));
    }
    return { header, records };
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(`${path}: ${(err as Error).message}`);
  }
}

/**
 * `rows` records drawn with replacement from a trace (seeded): a longer stationary stream from
 * the same traffic. A 10,000-row trace has only 10 windows of 1,000 — too few to tell whether a
 * tuner keeps the budget in 99 % of them.
 */
export function resampleRecords(records: readonly FeedbackRecord[], rows: number, seed: number): FeedbackRecord[] {
  const random = seededRandom(seed);
  return Array.from({ length: rows }, () => records[Math.floor(random() * records.length)] as FeedbackRecord);
}

/** 0.0043 → "0.43%": disagreements near a 1 % budget need two decimals. */
function formatRate(x: number): string {
  return `${(x * 100).toFixed(2)}%`;
}

function formatThresholds(thresholds: Record<number, number | null>): string {
  return Object.entries(thresholds)
    .map(([id, t]) => `${id}:${t === null ? '-' : t.toFixed(3)}`)
    .join(' ');
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}

function summary(report: ReplayReport, resampled: boolean, start: string): string {
  const rows = report.windows.map((w) => [
    String(w.index),
    String(w.startRow),
    formatRate(w.disagreement),
    w.withinBudget ? 'yes' : 'NO',
    formatPercent(w.savings),
    w.hindsightSavings === null ? '-' : formatPercent(w.hindsightSavings),
    formatThresholds(w.thresholdsAfter),
  ]);
  const count = (type: string): number => report.events.filter((e) => e.event.type === type).length;
  const within = report.windows.filter((w) => w.withinBudget).length;
  const lines = [
    `replayed ${report.rows} rows of ${report.model} (policy ${report.policy}) through the ${report.tuner} tuner: ` +
      `budget ${formatRate(report.budget)} per ${report.window}-row window, ` +
      `confidence ${formatPercent(report.confidence)}`,
    `start: ${start}: ${formatThresholds(report.startThresholds)}`,
    '',
    formatTable(
      ['window', 'first row', 'disagreement', 'within', 'savings', 'hindsight', 'thresholds after (ramp:τ, - never)'],
      rows,
      ['right', 'right', 'right', 'left', 'right', 'right', 'left'],
    ),
    '',
    report.withinBudgetFraction === null
      ? `fewer rows than one window (${report.window}): no window judged`
      : `windows within budget: ${within}/${report.windows.length} (${formatPercent(report.withinBudgetFraction)})`,
    `overall disagreement: ${formatRate(report.overallDisagreement)}`,
    `mean savings: ${formatPercent(report.meanSavings)}`,
    ...(report.compliantHindsight
      ? [
          `  compliant hindsight (best fixed thresholds for ` +
            `${resampled ? 'the trace the rows were drawn from' : 'this trace'} ` +
            `at ${formatRate(report.compliantHindsight.rate)}, where a window keeps the budget ` +
            `with probability ${formatPercent(report.compliantHindsight.compliance)}): ` +
            `${formatPercent(report.compliantHindsight.savings)}` +
            (report.fractionOfCompliantHindsight !== null
              ? `; the tuner saved ${formatPercent(report.fractionOfCompliantHindsight)} of it`
              : ''),
        ]
      : []),
    ...(report.meanHindsightSavings !== null
      ? [
          `  per-window hindsight (each window re-fitted to the budget on itself, optimistic): ${formatPercent(report.meanHindsightSavings)}` +
            (report.fractionOfHindsight !== null
              ? `; the tuner saved ${formatPercent(report.fractionOfHindsight)} of it`
              : ''),
        ]
      : []),
    `rows fed back to the tuner: ${report.feedbackRows} of ${report.rows}`,
    `tuner events: ${plural(count('retune'), 're-tune')}, ${plural(count('tighten'), 'tightening')}, ${plural(count('ramps'), 'ramp change')}`,
  ];
  return lines.join('\n');
}

export function registerReplayCommand(program: Command): void {
  program
    .command('replay')
    .description(
      'replay a recorded trace through a tuner as if it arrived live; report the budget, savings and hindsight-optimal savings per window',
    )
    .requiredOption('--trace <file>', 'trace written by offramp record (.jsonl)')
    .option(
      '--config <file>',
      "SLO file whose entry for the trace's model (or --served-model) sets the tuner, budget, exit mode, probe shares " +
        'and ramp-set changes, as the server would run them (default: the SLO defaults)',
    )
    .option('--served-model <name>', "with --config: the model entry to take (default: the trace's model)")
    .option(
      '--tuner <kind>',
      `tuner to replay (${REPLAYABLE_TUNER_KINDS.join(', ')}; default: the --config entry's, else guarded)`,
      parseTuner,
    )
    .option(
      '--budget <fraction>',
      "largest allowed disagreement with the full model per window (0.01 or 1%; default: the SLO entry's)",
      parseBudget,
    )
    .option(
      '--confidence <p>',
      "confidence 1 − δ of the guarded tuner's bound (default: the SLO entry's)",
      parseConfidence,
    )
    .option('--window <n>', "rows per window (default: the SLO entry's)", parsePositiveInt)
    .option('--patience <n>', 'for a patience-policy trace: consecutive ramps that must agree', parsePositiveInt)
    .option(
      '--mode <mode>',
      "exit mode to replay (drop: only probes reach the tuner, at the SLO entry's shares; release: every row; default: the SLO entry's)",
      parseMode,
    )
    .option('--fixed-ramps', 'keep the starting ramp set (the server drops and adds ramps)')
    .option(
      '--ramps <ids>',
      'starting ramps (comma-separated ids; default: the ones the server would start with, from the solo-exit curves)',
      parseRampList,
    )
    .option(
      '--thresholds <pairs>',
      'static tuner: fixed thresholds as id=τ pairs (default: calibrated on the first rows)',
      parseThresholds,
    )
    .option(
      '--start <where>',
      `guarded tuner: where its thresholds start (${TUNER_STARTS.join(', ')}; default calibrated when the ` +
        "trace header or --model gives the ramps' solo-exit curves, else never)",
      parseStart,
    )
    .option('--model <dir>', "prepared model the trace was recorded from: its ramps' solo-exit curves, for --start")
    .option('--apparate-batches <n>', 'apparate tuner: its window in batches (Apparate uses 4)', parsePositiveInt, 4)
    .option(
      '--resample <rows>',
      'replay this many rows drawn with replacement from the trace (a longer stationary stream)',
      parsePositiveInt,
    )
    .option('--seed <n>', "seed for --resample and drop mode's probe draws", parsePositiveInt, 1)
    .option('--no-hindsight', 'skip the hindsight-optimal search per window (faster)')
    .option('--json', 'print the report as JSON')
    .action(async (options: ReplayCliOptions) => {
      const trace = await readTrace(options.trace);
      const header = options.model ? await withManifestCurves(trace.header, options.model) : trace.header;
      const records = options.resample ? resampleRecords(trace.records, options.resample, options.seed) : trace.records;
      const served = await servedModelConfig(options, header.model);
      // Without an SLO file, the tuner replay is for: the guarded one (the bundled image model serves static).
      const kind = options.tuner ?? (options.config ? served.tuner.kind : 'guarded');
      if (kind === 'off') throw new CliError(`the served model's tuner is off: nothing to replay (give --tuner)`);
      if (options.thresholds && kind !== 'static') throw new CliError('--thresholds applies to --tuner static only');
      if (options.start && kind !== 'guarded') throw new CliError('--start applies to --tuner guarded only');
      const budget = options.budget ?? served.accuracy.budget;
      const confidence = options.confidence ?? served.accuracy.confidence;
      const window = options.window ?? served.accuracy.window;
      // The ramps the server would start with (the same choice from the same solo-exit curves),
      // unless given; every ramp of the trace when the header has no curves to choose by.
      const startSet = servingPlan(tracePlanningView(header), served).ramps.map((r) => r.id);
      const active =
        options.ramps ??
        (options.thresholds
          ? [...options.thresholds.keys()]
          : startSet.length > 0
            ? startSet
            : header.ramps.map((r) => r.id));
      const curves = active.every((id) => header.ramps.find((r) => r.id === id)?.soloCurve !== undefined);
      if (options.start === 'calibrated' && !curves)
        throw new CliError(
          `${options.trace}: --start calibrated needs the ramps' solo-exit curves: the trace header has none; give --model DIR`,
        );
      const start: TunerStart = options.start ?? (curves ? served.tuner.start : 'never');
      const startNote =
        kind !== 'guarded'
          ? kind === 'static'
            ? 'static'
            : 'never'
          : start === 'never' && !options.start && !curves
            ? 'never (no solo-exit curves in the trace header; --model DIR gives them)'
            : start;
      const mode = options.mode ?? served.exits.mode;
      const rampSet =
        kind === 'static' || options.fixedRamps
          ? undefined
          : servedRampSet(
              served,
              header.ramps.map((r) => r.id),
            );
      const common = {
        budget,
        confidence,
        window,
        patience: options.patience ?? served.exits.patience,
        hindsight: options.hindsight,
        activeRamps: active,
        feedback: {
          mode,
          settledShare: served.exits.dropFeedbackFraction,
          learningShare: served.exits.learningFeedbackFraction,
          seed: options.seed,
        },
        ...(rampSet ? { rampSet } : {}),
        ...(options.thresholds ? { thresholds: options.thresholds } : {}),
        ...(options.resample ? { population: trace.records } : {}),
      };
      const probes =
        mode === 'drop'
          ? `probes: ${formatPercent(served.exits.learningFeedbackFraction)} while learning, ` +
            `${formatPercent(served.exits.dropFeedbackFraction)} settled`
          : 'every row fed back';
      const ramps = rampSet
        ? `ramp set changes every ${rampSet.checkEveryBatches} batches (max ${rampSet.maxRamps} ramps)`
        : 'fixed ramp set';
      const setup = `${kind} tuner, ${mode} mode (${probes}), ${ramps}; settings from ${options.config ?? 'the SLO defaults'}`;
      let report: ReplayReport;
      try {
        report = replayTrace(
          header,
          records,
          kind === 'apparate'
            ? { kind: 'apparate', windowBatches: options.apparateBatches, ...common }
            : kind === 'guarded'
              ? { kind: 'guarded', start, ...common }
              : { kind, ...common },
        );
      } catch (err) {
        if (err instanceof RangeError) throw new CliError(`${options.trace}: ${err.message}`);
        throw err;
      }
      if (options.json) {
        writeJson(report);
        return;
      }
      writeOut(`${setup}\n${summary(report, options.resample !== undefined, startNote)}`);
    });
}
