/**
 * `npm run tuning-report [-- --write | --check] [--streams a,b] [--seeds N]`: replays every
 * evaluation stream in test/fixtures/shift-streams.ts — stationary traffic, and covariate and
 * class-mix shifts, sudden and gradual, recorded from the bundled models without repeated
 * inputs — through every tuner, as the server would run it (the bundled model's SLO defaults with
 * that tuner: its starting ramps and thresholds, ramp-set changes, drop mode's probe shares), in
 * drop mode with several seeds of the probe draws and in release mode, and prints the README's
 * tuning table. `--write` puts it into README.md between its markers; `--check` fails (exit 1)
 * when the committed table differs from what the code now computes. Replay is pure and seeded,
 * so the table is the same on every machine with the same Node.js; it measures decisions, not
 * time (savings come from the latency profile in the trace header).
 *
 * The yardstick for a stretch of traffic is the compliant hindsight (tuner/hindsight.ts): the best
 * fixed thresholds for those rows, chosen knowing them, at the rate where a window keeps the budget
 * with probability 99 % (and 95 %, to show how the yardstick moves with the compliance asked for),
 * for the best ramp set the tuner may run. For a shifted stream it is taken per phase (before the
 * change, during a gradual one, after the traffic settled).
 *
 * Per run: windows within budget; the longest run of windows over budget in a row; whether every
 * window that overlaps the change (sudden: the one containing it; gradual: the whole transition)
 * kept the budget; mean savings and their share of the stream's yardstick; after the change, when
 * nothing pays on the new traffic (its yardstick below the 1 % the guarded tuner learns ramps for,
 * IDLE_BELOW) the mean savings from the window after the change on (the target: ≥ −2 %), else
 * those savings and how many windows after the traffic settled the tuner took to reach 80 % of the
 * new traffic's yardstick (the target: ≤ 3).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { defaultServingConfig, type ModelConfig } from '../src/config/index.js';
import { servingPlan, tracePlanningView } from '../src/engine/exit-plan.js';
import { servedRampSet } from '../src/engine/live-tuning.js';
import { compliantHindsight } from '../tuner/hindsight.js';
import { rampOverheadShare } from '../tuner/latency-model.js';
import { IDLE_BELOW } from '../tuner/online-tuner.js';
import { replayTrace, type ReplayReport, type TraceHeader } from '../tuner/replay.js';
import type { FeedbackRecord } from '../tuner/feedback-record.js';
import type { TunerKind } from '../tuner/tuner.js';
import { loadStream, STREAM_NAMES, type ShiftStream, type StreamName } from '../test/fixtures/shift-streams.js';

const README = new URL('../README.md', import.meta.url);
const BEGIN = '<!-- tuning-report:begin (npm run tuning-report -- --write) -->';
const END = '<!-- tuning-report:end -->';
const TUNERS: readonly TunerKind[] = ['guarded', 'apparate', 'static'];
/** Compliance levels of the yardstick: the first is the one the tuner is held to. */
const COMPLIANCE = [0.99, 0.95] as const;
/** Share of the new traffic's yardstick a tuner must regain, and within how many windows (the targets). */
const REGAIN_SHARE = 0.8;

interface Yardsticks {
  /** Per compliance level (COMPLIANCE order): the savings of the best compliant fixed setting. */
  whole: number[];
  before: number[] | null;
  after: number[] | null;
}

interface RunFigures {
  within: number;
  windows: number;
  longestOverRun: number;
  changeWithin: boolean | null;
  savings: number;
  ofYardstick: number | null;
  /** After the change nothing pays on the new traffic (its yardstick is below IDLE_BELOW). */
  nothingPays: boolean;
  /** Mean savings from the window after the change on (null without a change). */
  afterSavings: number | null;
  /** After the traffic settled, when something pays: windows until 80 % of its yardstick (null: never within the stream). */
  regainWindows: number | null;
  regainNever: boolean;
}

/** The bundled model's SLO entry (the stream's model), with the tuner `kind`. */
function servedConfig(model: string, kind: TunerKind): ModelConfig {
  const entry = defaultServingConfig({}).models.find((m) => m.name === model);
  if (!entry) throw new Error(`no bundled model named ${model} in the default config`);
  return { ...entry, tuner: { ...entry.tuner, kind } };
}

function startRamps(
  header: TraceHeader,
  config: ModelConfig,
): { ids: number[]; thresholds: Map<number, number | null> } {
  const plan = servingPlan(tracePlanningView(header), config);
  return { ids: plan.ramps.map((r) => r.id), thresholds: new Map(plan.ramps.map((r) => [r.id, r.threshold])) };
}

/**
 * Every ramp set the server's tuner may run: at most `exits.max_ramps` of the model's ramps whose
 * heads cost at most `exits.ramp_budget` together (what its ramp-set changes respect).
 */
function reachableRampSets(header: TraceHeader, config: ModelConfig): number[][] {
  const ids = header.ramps.map((r) => r.id);
  const sets: number[][] = [];
  const grow = (from: number, set: number[]): void => {
    if (set.length > 0 && rampOverheadShare(header.profile, set, 1) <= config.exits.rampBudget + 1e-12) sets.push(set);
    if (set.length === config.exits.maxRamps) return;
    for (let k = from; k < ids.length; k++) grow(k + 1, [...set, ids[k] as number]);
  };
  grow(0, []);
  return sets;
}

/**
 * The yardstick of a stretch of rows: the compliant hindsight of the best reachable ramp set at
 * 99 % (a tuner that changes ramps may find any of them), and that set's at 95 %.
 */
function yardstick(header: TraceHeader, records: readonly FeedbackRecord[], config: ModelConfig): number[] {
  const options = (compliance: number) => ({
    budget: config.accuracy.budget,
    windowRows: config.accuracy.window,
    compliance,
  });
  const window = (activeRamps: number[]) => ({
    activeRamps,
    rule: { policy: header.policy, patience: config.exits.patience },
    profile: header.profile,
    batchSize: 1,
  });
  let best = { savings: Number.NEGATIVE_INFINITY, set: [] as number[] };
  for (const set of reachableRampSets(header, config)) {
    const savings = compliantHindsight(records, window(set), options(COMPLIANCE[0])).savings;
    if (savings > best.savings) best = { savings, set };
  }
  return [best.savings, compliantHindsight(records, window(best.set), options(COMPLIANCE[1])).savings];
}

/**
 * Yardsticks per phase — before the change, during a gradual one, after the traffic settled — and
 * for the whole stream their row-weighted mean: what a tuner that knew each phase in advance could
 * save (one fixed setting across a shift would be a lower bar than any phase's).
 */
function yardsticks(stream: ShiftStream, config: ModelConfig): Yardsticks {
  const at = (records: readonly FeedbackRecord[]): number[] => yardstick(stream.header, records, config);
  const change = stream.changes[0];
  if (!change) return { whole: at(stream.records), before: null, after: null };
  const phases = [
    stream.records.slice(0, change.row),
    stream.records.slice(change.row, change.settledAt),
    stream.records.slice(change.settledAt),
  ].filter((rows) => rows.length > 0);
  const each = phases.map((rows) => ({ rows: rows.length, yard: at(rows) }));
  const total = stream.records.length;
  const whole = COMPLIANCE.map((_, c) => each.reduce((s, p) => s + (p.rows * (p.yard[c] as number)) / total, 0));
  return { whole, before: (each[0] as { yard: number[] }).yard, after: (each.at(-1) as { yard: number[] }).yard };
}

function figures(report: ReplayReport, stream: ShiftStream, yard: Yardsticks): RunFigures {
  const windows = report.windows;
  let run = 0;
  let longestOverRun = 0;
  for (const w of windows) {
    run = w.withinBudget ? 0 : run + 1;
    longestOverRun = Math.max(longestOverRun, run);
  }
  const change = stream.changes[0];
  const size = report.window;
  let changeWithin: boolean | null = null;
  let nothingPays = false;
  let afterSavings: number | null = null;
  let regainWindows: number | null = null;
  let regainNever = false;
  if (change) {
    const first = Math.floor(change.row / size);
    const last = change.kind === 'sudden' ? first : Math.max(first, Math.ceil(change.settledAt / size) - 1);
    changeWithin = windows.slice(first, last + 1).every((w) => w.withinBudget);
    const rest = windows.slice(first + 1);
    afterSavings = rest.length > 0 ? rest.reduce((s, w) => s + w.savings, 0) / rest.length : null;
    const after = (yard.after as number[])[0] as number;
    const settled = Math.ceil(change.settledAt / size);
    // Nothing pays: no reachable setting saves what the guarded tuner would learn ramps for.
    nothingPays = after < IDLE_BELOW;
    if (!nothingPays) {
      const k = windows.slice(settled).findIndex((w) => w.savings >= REGAIN_SHARE * after);
      regainWindows = k >= 0 ? k : null;
      regainNever = k < 0;
    }
  }
  const whole = yard.whole[0] as number;
  return {
    within: windows.filter((w) => w.withinBudget).length,
    windows: windows.length,
    longestOverRun,
    changeWithin,
    savings: report.meanSavings,
    ofYardstick: whole > 0 ? report.meanSavings / whole : null,
    nothingPays,
    afterSavings,
    regainWindows,
    regainNever,
  };
}

function replayOnce(stream: ShiftStream, kind: TunerKind, mode: 'drop' | 'release', seed: number): ReplayReport {
  const config = servedConfig(stream.header.model, kind);
  const start = startRamps(stream.header, config);
  const rampSet =
    kind === 'static'
      ? undefined
      : servedRampSet(
          config,
          stream.header.ramps.map((r) => r.id),
        );
  const common = {
    budget: config.accuracy.budget,
    confidence: config.accuracy.confidence,
    window: config.accuracy.window,
    patience: config.exits.patience,
    hindsight: false,
    activeRamps: start.ids,
    feedback: {
      mode,
      settledShare: config.exits.dropFeedbackFraction,
      learningShare: config.exits.learningFeedbackFraction,
      seed,
    },
    ...(rampSet ? { rampSet } : {}),
  };
  if (kind === 'static')
    return replayTrace(stream.header, stream.records, { kind, ...common, thresholds: start.thresholds });
  if (kind === 'guarded')
    return replayTrace(stream.header, stream.records, { kind, ...common, start: config.tuner.start });
  return replayTrace(stream.header, stream.records, { kind, ...common });
}

const pct = (x: number): string => `${(x * 100).toFixed(1)} %`;
/** A figure over seeds: the one value, or min–max. */
function range(values: number[], format: (x: number) => string): string {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return format(lo) === format(hi) ? format(lo) : `${format(lo)} – ${format(hi)}`;
}

function row(stream: ShiftStream, kind: TunerKind, mode: string, runs: RunFigures[]): string {
  const list = <T>(pick: (f: RunFigures) => T): T[] => runs.map(pick);
  const within =
    range(
      list((f) => f.within),
      String,
    ) + `/${runs[0]?.windows ?? 0}`;
  const change =
    stream.changes.length === 0 ? '—' : `${list((f) => f.changeWithin).filter(Boolean).length}/${runs.length}`;
  const ofYard = runs.every((f) => f.ofYardstick !== null)
    ? range(
        list((f) => f.ofYardstick as number),
        pct,
      )
    : '—';
  let after = '—';
  if (runs.some((f) => f.nothingPays))
    after = `nothing pays: saved ${range(
      list((f) => f.afterSavings ?? 0),
      pct,
    )}`;
  else if (stream.changes.length > 0) {
    const saved = `saved ${range(
      list((f) => f.afterSavings ?? 0),
      pct,
    )}`;
    const regained = runs.filter((f) => !f.regainNever);
    const windows = range(
      regained.map((f) => f.regainWindows ?? 0),
      String,
    );
    after =
      regained.length === runs.length
        ? `${saved}; 80 % regained in ${windows} windows`
        : `${saved}; 80 % regained in ${regained.length}/${runs.length} runs${regained.length > 0 ? ` (in ${windows} windows)` : ''}`;
  }
  return `| ${stream.name} | ${kind} | ${mode} | ${within} | ${range(
    list((f) => f.longestOverRun),
    String,
  )} | ${change} | ${range(
    list((f) => f.savings),
    pct,
  )} | ${ofYard} | ${after} |`;
}

function yardRow(stream: ShiftStream, yard: Yardsticks): string {
  const both = (v: number[] | null): string => (v ? `${pct(v[0] as number)} (${pct(v[1] as number)})` : '—');
  return `| ${stream.name} | ${stream.records.length} | ${stream.description} | ${both(yard.whole)} | ${both(yard.before)} | ${both(yard.after)} |`;
}

async function report(names: readonly string[], seeds: number): Promise<string> {
  const yardLines: string[] = [];
  const runLines: string[] = [];
  for (const name of names) {
    const stream = await loadStream(name as StreamName);
    const config = servedConfig(stream.header.model, 'guarded');
    const yard = yardsticks(stream, config);
    yardLines.push(yardRow(stream, yard));
    for (const kind of TUNERS) {
      const modes: ['drop' | 'release', number[]][] =
        kind === 'static'
          ? [['drop', [1]]]
          : [
              ['drop', Array.from({ length: seeds }, (_, i) => i + 1)],
              ['release', [1]],
            ];
      for (const [mode, seedList] of modes) {
        const runs = seedList.map((seed) => figures(replayOnce(stream, kind, mode, seed), stream, yard));
        runLines.push(
          row(stream, kind, mode === 'drop' && seedList.length > 1 ? `drop, seeds 1–${seeds}` : mode, runs),
        );
      }
      process.stderr.write(`  ${name}: ${kind} done\n`);
    }
  }
  return [
    BEGIN,
    '',
    'Yardsticks: the compliant hindsight (best fixed thresholds knowing the rows, keeping a window within budget with',
    'probability 99 %; 95 % in brackets) of the best ramp set the tuner may run (≤ `max_ramps`, within `ramp_budget`),',
    "per phase; for a shifted stream the whole-stream figure is the phases' row-weighted mean.",
    '',
    '| stream | rows | traffic | whole stream | before the change | after it settles |',
    '|---|---:|---|---:|---:|---:|',
    ...yardLines,
    '',
    '| stream | tuner | mode | windows within budget | longest run over budget | change window(s) within ' +
      '| latency saved | of the 99 % yardstick | after the change |',
    '|---|---|---|---:|---:|---:|---:|---:|---|',
    ...runLines,
    '',
    END,
  ].join('\n');
}

const { values } = parseArgs({
  options: {
    write: { type: 'boolean', default: false },
    check: { type: 'boolean', default: false },
    streams: { type: 'string' },
    seeds: { type: 'string', default: '3' },
  },
});
const names: readonly string[] = values.streams ? values.streams.split(',') : STREAM_NAMES;
const table = await report(names, Number(values.seeds));
const readme = readFileSync(README, 'utf8');
const from = readme.indexOf(BEGIN);
const to = readme.indexOf(END);
if (values.check) {
  if (from < 0 || to < 0) {
    console.error(`README.md has no tuning table between its markers (${BEGIN} … ${END}): run with --write`);
    process.exit(1);
  }
  const committed = readme.slice(from, to + END.length);
  if (committed !== table) {
    console.error('README.md: the tuning table no longer matches what the tuners do now. Computed:\n');
    console.error(table);
    console.error('\nRegenerate it with `npm run tuning-report -- --write` and say in the commit why it moved.');
    process.exit(1);
  }
  console.log('README.md: the tuning table matches');
} else if (values.write) {
  if (from < 0 || to < 0) throw new Error(`README.md: no markers (${BEGIN} … ${END}) to write the table between`);
  writeFileSync(README, readme.slice(0, from) + table + readme.slice(to + END.length));
  console.log('README.md: tuning table written');
} else {
  console.log(table);
}
