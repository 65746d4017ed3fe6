/**
 * A tuner's learned state across a restart, the pure part (the state file and when it is written
 * are src/engine/tuner-state-file.ts and tuner-state-saver.ts):
 *  - the rows a tuner resumes from (TunerResumePoint.records) in a compact, columnar form: per row
 *    each saved ramp's argmax and score, the full model's argmax and the exit that answered it —
 *    what the tuners, the guard and the what-if read of a record (window-eval.ts), and no more;
 *  - the guard's re-check of saved thresholds on those rows, under the budget, confidence and
 *    window in force now, before a restarted tuner serves with them (`recheckResumePoint`).
 */
import { apparateAllowed } from './apparate.js';
import type { FeedbackRecord } from './feedback-record.js';
import { checkSetting } from './guarded.js';
import type { OnlineTunerKind, SettingJudgeOptions, TunerResumePoint } from './tuner.js';
import { WindowEvaluator } from './window-eval.js';

export interface CompactRows {
  /** The ramps whose readings every row carries, in model order. */
  ramps: number[];
  count: number;
  /** Per row: the exit that answered it (−1: the full model). */
  exit: Int32Array;
  /** Per row: the full model's argmax (−1: unknown, the row left the batch early). */
  final: Int32Array;
  /**
   * Ramp-major: `argmax[j × count + i]` is ramp `ramps[j]`'s argmax on row i, −1 where the row
   * has no reading of it (its score is then NaN); `score` likewise.
   */
  argmax: Int32Array;
  score: Float64Array;
}

/** `records`' readings of `ramps` (those they carry) as compact rows. */
export function compactRows(records: readonly FeedbackRecord[], ramps: readonly number[]): CompactRows {
  const sorted = [...ramps].sort((a, b) => a - b);
  const n = records.length;
  const rows: CompactRows = {
    ramps: sorted,
    count: n,
    exit: new Int32Array(n),
    final: new Int32Array(n),
    argmax: new Int32Array(sorted.length * n),
    score: new Float64Array(sorted.length * n),
  };
  records.forEach((record, i) => {
    rows.exit[i] = record.exit;
    rows.final[i] = record.final ? record.final.argmax : -1;
    sorted.forEach((id, j) => {
      const reading = record.ramps.find((r) => r.id === id);
      rows.argmax[j * n + i] = reading ? reading.argmax : -1;
      rows.score[j * n + i] = reading ? reading.score : Number.NaN;
    });
  });
  return rows;
}

/**
 * Compact rows as feedback records, stamped `t`. What was not kept reads as unknown: the
 * confidences (NaN; no tuner reads them, the score is what exits), the batch size (1), and the
 * reading of an exit that is no longer among `ramps` (then the row's realised disagreement is
 * unknown and not counted). A reading the row did not carry stays absent. Every row is a probe:
 * only probes are saved.
 */
export function expandRows(rows: CompactRows, t: number): FeedbackRecord[] {
  const n = rows.count;
  return Array.from({ length: n }, (_, i) => {
    const final = rows.final[i] as number;
    return {
      t,
      batchSize: 1,
      exit: rows.exit[i] as number,
      ramps: rows.ramps.flatMap((id, j) => {
        const argmax = rows.argmax[j * n + i] as number;
        return argmax < 0 ? [] : [{ id, argmax, confidence: Number.NaN, score: rows.score[j * n + i] as number }];
      }),
      final: final >= 0 ? { argmax: final, confidence: Number.NaN } : null,
      probe: true,
    };
  });
}

/** A resume point with its rows compact: how it crosses threads and goes to a file. */
export interface CompactResumePoint {
  activeRamps: number[];
  thresholds: Map<number, number | null>;
  rows: CompactRows;
}

export function compactResumePoint(point: TunerResumePoint): CompactResumePoint {
  const activeRamps = [...point.activeRamps].sort((a, b) => a - b);
  return {
    activeRamps,
    thresholds: new Map(activeRamps.map((id) => [id, point.thresholds.get(id) ?? null])),
    rows: compactRows(point.records, activeRamps),
  };
}

/** The resume point again, its records stamped `t` (`expandRows`). */
export function expandResumePoint(point: CompactResumePoint, t: number): TunerResumePoint {
  return { activeRamps: point.activeRamps, thresholds: point.thresholds, records: expandRows(point.rows, t) };
}

/** The budget, confidence and window are those in force now (not those the state was learned under). */
export interface ResumeCheckOptions extends SettingJudgeOptions {
  kind: OnlineTunerKind;
}

/** The re-check's verdict, and the figures behind it. */
export interface ResumeCheck {
  /** guarded: the guarded tuner's bound; apparate: Apparate's own empirical budget check. */
  rule: 'guarded' | 'apparate';
  /** Rows whose final answer is known: the ones judged. */
  rows: number;
  /** The saved thresholds' disagreement on them; null without any. */
  disagreement: number | null;
  /** Its upper Clopper–Pearson bound (guarded); null for Apparate's rule or without rows. */
  upperBound: number | null;
  passed: boolean;
}

/**
 * Whether a resume point's thresholds may serve again under the settings in force now, judged on
 * its own rows by the kind's own rule:
 *  - guarded: as the guarded tuner judges a setting on its path (guarded.ts `checkSetting`): the
 *    upper bound on the disagreement held below the window-safe rate, and the rate itself kept on
 *    the last window of the rows. These are the rows the thresholds were tested on, so on an
 *    unchanged budget they pass unless the rows since the last re-tune tipped the balance; a
 *    tightened budget, or rows that disagree more, fail them;
 *  - apparate: Apparate's own check, the empirical disagreement within the budget (it has no
 *    bound: held to the guarded one, its thresholds, chosen right at the budget, would all fail).
 * All-never passes (it cannot disagree).
 */
export function recheckResumePoint(point: TunerResumePoint, options: ResumeCheckOptions): ResumeCheck {
  const activeRamps = [...point.activeRamps].sort((a, b) => a - b);
  const test = new WindowEvaluator(point.records, {
    activeRamps,
    rule: options.rule,
    profile: options.profile,
    batchSize: options.latencyBatchSize ?? 1,
  });
  const vector = test.toVector(point.thresholds);
  const rows = test.countedRows;
  if (options.kind === 'apparate') {
    const disagreements = test.totals(vector).disagreements;
    const never = vector.every((t) => t === Number.POSITIVE_INFINITY);
    return {
      rule: 'apparate',
      rows,
      disagreement: rows > 0 ? disagreements / rows : null,
      upperBound: null,
      passed: never || (rows > 0 && disagreements <= apparateAllowed(rows, options.budget)),
    };
  }
  const recentFrom = test.rows - options.window;
  const check = checkSetting(vector, test, {
    budget: options.budget,
    confidence: options.confidence,
    windowRows: options.window,
    ...(recentFrom > 0 ? { recent: test.subset((i) => i >= recentFrom) } : {}),
  });
  return {
    rule: 'guarded',
    rows,
    disagreement: rows > 0 ? check.disagreements / rows : null,
    upperBound: check.upperBound,
    passed: check.passed,
  };
}
