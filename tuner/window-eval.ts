/**
 * Re-deciding a window of feedback records under candidate thresholds: which ramp would have
 * answered each row, how often that answer differs from the full model, how many rows each ramp
 * would take and what that saves (tuner/latency-model.ts). Every search in the tuner (guarded,
 * hindsight, Apparate) is built on this, and the searches try thousands of threshold settings
 * per window, so the window is turned once into per-ramp columns (score, disagrees-with-final),
 * with the rows sorted by score per ramp when a search first needs them (`subset` cuts a part of
 * a window without redoing either). Then
 *  - `evaluate` / `totals` decide all rows for one setting in O(rows × ramps) — O(rows) when
 *    only one threshold changed since the last call, the usual step of a search — and
 *  - `sweep` answers "what if only ramp j's threshold changed" for every candidate value of it
 *    at once, in one pass over the rows sorted by ramp j's score (rows that exit before j keep
 *    their answer, the others exit at j when their score clears the candidate, or fall through
 *    to the next ramp that would take them).
 *
 * Conventions: thresholds are a Map ramp id → score threshold, null = "never" (the ramp scores
 * but answers nothing). Inside the searches a threshold vector indexed like `activeRamps` uses
 * +Infinity for "never". Disagreement is counted only on rows whose final answer is known
 * (drop mode leaves some rows without one); exit rates are shares of all rows. A row that lacks
 * an active ramp's reading (it left the batch before it, or the ramp was added later) cannot
 * exit there.
 */
import { extendStreak, shouldExit, type ExitRule, type Streak } from './exit-policy.js';
import type { FeedbackRecord, RampFeedback } from './feedback-record.js';
import { atBatch, estimatedSavings, latencyToAnswer, type LatencyProfileData } from './latency-model.js';

/** Ramp id → threshold on the policy score; null or absent = never. */
export type Thresholds = ReadonlyMap<number, number | null>;

export interface WindowEvalOptions {
  /** Ramps that may answer, in model order. */
  activeRamps: readonly number[];
  rule: ExitRule;
  profile: LatencyProfileData;
  /** Batch size at which latencies are read from the profile (default 1). */
  batchSize?: number;
  /**
   * Replace each row's 0/1 "disagrees at ramp j" by a smoothed probability: per ramp, an
   * isotonic (never rising with the score) fit of disagreement against score, each block shrunk
   * as (k + ½) / (n + 1). For learning paths only: a search on raw 0/1 flags steers thresholds
   * around the few rows that happen to disagree; on smoothed values it cannot single rows out.
   */
  smoothDisagreement?: boolean;
}

/** How one row would be answered: at a ramp (its id) or by the full model (-1). */
export interface RowAnswer {
  exit: number;
  /** The class answered; -1 when nobody answered (no exit and no final answer). */
  argmax: number;
}

export interface WindowEvaluation {
  rows: number;
  /** Rows whose final answer is known: the denominator of the disagreement rate. */
  countedRows: number;
  disagreements: number;
  /** disagreements / countedRows (0 when no row is counted). */
  disagreementRate: number;
  /** Share of all rows answered at each active ramp. */
  exitRates: Map<number, number>;
  /** 1 − E[time to answer] / vanilla latency (latency-model.ts); negative when heads cost more than exits save. */
  savings: number;
  /** Per row: exit ramp id or -1. */
  exits: Int32Array;
  /** Per row: class answered. */
  answers: Int32Array;
}

/** Totals for one threshold vector, without per-row detail. */
export interface WindowTotals {
  /** Sum over rows of the time to answer, in ms. */
  latencyTotalMs: number;
  /** Rows answered differently from the full model (expected count when smoothed). */
  disagreements: number;
  /** Rows answered at each active ramp index. */
  exitCounts: Int32Array;
}

/** Outcomes of `sweep`: entry 0 is ramp j at "never", entry c + 1 is candidate c. */
export interface SweepResult {
  latencyTotalMs: Float64Array;
  disagreements: Float64Array;
}

function readingOf(record: FeedbackRecord, rampId: number): RampFeedback | undefined {
  for (const r of record.ramps) if (r.id === rampId) return r;
  return undefined;
}

/**
 * The live decision for one row: the first active ramp (model order) whose reading clears its
 * threshold (and, for patience, ends a long enough streak of agreeing ramps): `shouldExit`, the
 * rule the executor applies live, so replay decides exactly like the executor does.
 */
export function decideExit(
  record: FeedbackRecord,
  activeRamps: readonly number[],
  thresholds: Thresholds,
  rule: ExitRule,
): RowAnswer {
  let streak: Streak | undefined;
  for (const id of activeRamps) {
    const reading = readingOf(record, id);
    if (!reading) continue;
    streak = extendStreak(streak, reading.argmax);
    if (shouldExit(rule, thresholds.get(id) ?? null, reading, streak)) return { exit: id, argmax: reading.argmax };
  }
  return { exit: -1, argmax: record.final?.argmax ?? -1 };
}

/**
 * A window's columns, flat and ramp-major (index j * rows + i, j = index in activeRamps) so the
 * hot loops stay monomorphic. Built from records by the WindowEvaluator constructor, or cut
 * from another window's by `subset` (no re-reading, no re-sorting).
 */
export interface WindowColumns {
  rows: number;
  /** Rows whose final answer is known. */
  countedRows: number;
  /** The row's score at active index j, or −Infinity where the row cannot exit there. */
  scores: Float64Array;
  /** The ramp's argmax (−1 when it has no reading). */
  argmaxes: Int32Array;
  /** 1 when answering at j would disagree with a known final answer (a probability when smoothed). */
  disagrees: Float64Array;
  finalArgmax: Int32Array;
  /**
   * Per active index: rows that can exit there, by score, highest first (ties by row); an
   * entry is undefined until something needs it. Sorting is most of the cost of building a
   * window, and evaluating settings (`totals`, `evaluate`) never needs the order: only searches
   * (`sweep`, `candidates`) and smoothing do.
   */
  byScore: (Int32Array | undefined)[];
}

/** Consecutive agreeing ramps a row needs before it may exit (1 unless the rule is patience). */
function patienceOf(rule: ExitRule): number {
  return rule.policy === 'patience' ? rule.patience : 1;
}

/**
 * One row's entries of the columns (WindowColumns), written at index j * stride + row for each
 * active index j: its score where it may exit at ramp j (−Infinity where it cannot: no reading,
 * a NaN score, or a patience streak still too short), that ramp's argmax (−1 without a reading)
 * and 1 where answering there would disagree with a known final answer. Every entry is written,
 * so scratch arrays can be reused. The one reading of a record the searches and the path
 * tallies (path-tally.ts) share. Returns whether the row's final answer is known.
 */
export function readRowColumns(
  record: FeedbackRecord,
  activeRamps: readonly number[],
  rule: ExitRule,
  columns: Pick<WindowColumns, 'scores' | 'argmaxes' | 'disagrees'>,
  row: number,
  stride: number,
): boolean {
  const patience = patienceOf(rule);
  const final = record.final ? record.final.argmax : -1;
  let streak: Streak | undefined;
  for (let j = 0; j < activeRamps.length; j++) {
    const at = j * stride + row;
    columns.scores[at] = Number.NEGATIVE_INFINITY;
    columns.argmaxes[at] = -1;
    columns.disagrees[at] = 0;
    const reading = readingOf(record, activeRamps[j] as number);
    if (!reading) continue;
    streak = extendStreak(streak, reading.argmax);
    columns.argmaxes[at] = reading.argmax;
    if (record.final && reading.argmax !== final) columns.disagrees[at] = 1;
    if (streak.length >= patience && !Number.isNaN(reading.score)) columns.scores[at] = reading.score;
  }
  return Boolean(record.final);
}

function buildColumns(records: readonly FeedbackRecord[], options: WindowEvalOptions): WindowColumns {
  const active = options.activeRamps;
  const m = active.length;
  const n = records.length;
  const columns = {
    scores: new Float64Array(m * n),
    argmaxes: new Int32Array(m * n),
    disagrees: new Float64Array(m * n),
  };
  const finalArgmax = new Int32Array(n).fill(-1);
  let countedRows = 0;
  records.forEach((record, i) => {
    if (record.final) finalArgmax[i] = record.final.argmax;
    if (readRowColumns(record, active, options.rule, columns, i, n)) countedRows++;
  });
  return { rows: n, countedRows, ...columns, finalArgmax, byScore: active.map(() => undefined) };
}

/**
 * Rows that can exit at active index j, by score, highest first (ties by row). The scores are
 * sorted natively (a typed array, no comparator calls); then each row, in row order, goes after
 * every row with a higher score and the rows with its score placed before it.
 */
export function sortByScore(scores: Float64Array, rows: number, j: number): Int32Array {
  const column = scores.subarray(j * rows, (j + 1) * rows);
  let count = 0;
  for (let i = 0; i < rows; i++) if ((column[i] as number) > Number.NEGATIVE_INFINITY) count++;
  const ascending = new Float64Array(count);
  count = 0;
  for (let i = 0; i < rows; i++)
    if ((column[i] as number) > Number.NEGATIVE_INFINITY) ascending[count++] = column[i] as number;
  ascending.sort();
  const order = new Int32Array(count);
  /** Rows placed so far per score, indexed by the score's upper bound in `ascending`. */
  const placed = new Int32Array(count + 1);
  for (let i = 0; i < rows; i++) {
    const score = column[i] as number;
    if (!(score > Number.NEGATIVE_INFINITY)) continue;
    // Upper bound: the first entry above the score; count − it rows score higher.
    let lo = 0;
    let hi = count;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((ascending[mid] as number) <= score) lo = mid + 1;
      else hi = mid;
    }
    order[count - lo + (placed[lo] as number)] = i;
    placed[lo] = (placed[lo] as number) + 1;
  }
  return order;
}

/**
 * Time to answer at each active index j (j < m) and at the final layer (index m), ms: what a row
 * costs by where it exits (latency-model.ts), in the layout the searches and the path tallies use.
 */
export function exitLatencies(options: WindowEvalOptions): Float64Array {
  const active = options.activeRamps;
  const batchSize = options.batchSize ?? 1;
  const latencyMs = new Float64Array(active.length + 1);
  active.forEach((id, j) => (latencyMs[j] = latencyToAnswer(options.profile, active, id, batchSize)));
  latencyMs[active.length] = latencyToAnswer(options.profile, active, -1, batchSize);
  return latencyMs;
}

/** Exit rates (share of `rows` answered at each active ramp) and savings from exit counts per active index. */
export function exitFigures(
  exitCounts: Int32Array,
  rows: number,
  options: WindowEvalOptions,
): Pick<WindowEvaluation, 'exitRates' | 'savings'> {
  const exitRates = new Map(options.activeRamps.map((id, j) => [id, rows > 0 ? (exitCounts[j] as number) / rows : 0]));
  return {
    exitRates,
    savings: estimatedSavings(options.profile, options.activeRamps, exitRates, options.batchSize ?? 1),
  };
}

/** Map (null = never) from a threshold vector indexed like `activeRamps` (+Infinity = never). */
export function thresholdsOf(activeRamps: readonly number[], vector: Float64Array): Map<number, number | null> {
  return new Map(activeRamps.map((id, j) => [id, Number.isFinite(vector[j] as number) ? (vector[j] as number) : null]));
}

/** A window of records prepared for fast re-decision under many threshold settings. */
export class WindowEvaluator {
  readonly rows: number;
  readonly countedRows: number;
  readonly activeRamps: readonly number[];
  readonly batchSize: number;
  /** Time to answer at active ramp index j (j < m) or at the final layer (index m), ms. */
  readonly latencyMs: Float64Array;
  /** The unsplit model's latency, the baseline savings are measured against. */
  readonly vanillaMs: number;

  private readonly options: WindowEvalOptions;
  private readonly scores: Float64Array;
  private readonly argmaxes: Int32Array;
  private readonly disagrees: Float64Array;
  private readonly finalArgmax: Int32Array;
  private readonly byScore: (Int32Array | undefined)[];
  // Scratch space for sweep, reused between calls.
  private readonly reach: Uint8Array;
  private readonly deltaLatency: Float64Array;
  private readonly deltaDisagree: Float64Array;
  /** Where each row exits under `cachedVector` (sweeps of one coordinate reuse it). */
  private readonly exitIndex: Int32Array;
  private cachedVector: Float64Array | null = null;

  /** From records (oldest first), or from columns prepared by `subset`. */
  constructor(source: readonly FeedbackRecord[] | WindowColumns, options: WindowEvalOptions) {
    this.options = options;
    this.activeRamps = [...options.activeRamps];
    this.batchSize = options.batchSize ?? 1;
    this.latencyMs = exitLatencies(options);
    this.vanillaMs = atBatch(options.profile, options.profile.fullModelMs, this.batchSize);

    const columns = 'byScore' in source ? source : buildColumns(source, options);
    const n = columns.rows;
    this.rows = n;
    this.countedRows = columns.countedRows;
    this.scores = columns.scores;
    this.argmaxes = columns.argmaxes;
    this.disagrees = columns.disagrees;
    this.finalArgmax = columns.finalArgmax;
    this.byScore = columns.byScore;
    if (options.smoothDisagreement) this.activeRamps.forEach((_, j) => this.smooth(j));
    this.reach = new Uint8Array(n);
    this.deltaLatency = new Float64Array(n);
    this.deltaDisagree = new Float64Array(n);
    this.exitIndex = new Int32Array(n);
  }

  /**
   * The rows for which `keep(row)` holds, as a new evaluator (same ramps, profile and batch
   * size; `smoothDisagreement` as given). Copies the columns: this evaluator is unchanged.
   */
  subset(keep: (row: number) => boolean, options: { smoothDisagreement?: boolean } = {}): WindowEvaluator {
    const n = this.rows;
    const m = this.activeRamps.length;
    const newIndex = new Int32Array(n).fill(-1);
    let rows = 0;
    let countedRows = 0;
    for (let i = 0; i < n; i++) {
      if (!keep(i)) continue;
      newIndex[i] = rows++;
      if ((this.finalArgmax[i] as number) >= 0) countedRows++;
    }
    const scores = new Float64Array(m * rows);
    const argmaxes = new Int32Array(m * rows);
    const disagrees = new Float64Array(m * rows);
    const finalArgmax = new Int32Array(rows);
    for (let i = 0; i < n; i++) {
      const k = newIndex[i] as number;
      if (k < 0) continue;
      finalArgmax[k] = this.finalArgmax[i] as number;
      for (let j = 0; j < m; j++) {
        scores[j * rows + k] = this.scores[j * n + i] as number;
        argmaxes[j * rows + k] = this.argmaxes[j * n + i] as number;
        disagrees[j * rows + k] = this.disagrees[j * n + i] as number;
      }
    }
    // An order already sorted carries over (a subsequence of a sorted order is sorted); others stay lazy.
    const byScore = this.byScore.map((order) => {
      if (!order) return undefined;
      const out: number[] = [];
      for (const i of order) if ((newIndex[i] as number) >= 0) out.push(newIndex[i] as number);
      return Int32Array.from(out);
    });
    const { smoothDisagreement: _, ...base } = this.options;
    return new WindowEvaluator(
      { rows, countedRows, scores, argmaxes, disagrees, finalArgmax, byScore },
      { ...base, ...options },
    );
  }

  /**
   * Pool-adjacent-violators over ramp j's rows from highest score to lowest: the fitted
   * disagreement never falls as the score falls. Rows without a final answer carry no evidence.
   */
  private smooth(j: number): void {
    const n = this.rows;
    const order = this.order(j);
    const counted = new Int32Array(order.length);
    let rows = 0;
    for (const i of order) if ((this.finalArgmax[i] as number) >= 0) counted[rows++] = i;
    // Blocks of consecutive rows (in that order): disagreements k over rows w, ending at row `end`.
    const blockK = new Float64Array(rows);
    const blockW = new Float64Array(rows);
    const blockEnd = new Int32Array(rows);
    let blocks = 0;
    for (let p = 0; p < rows; p++) {
      blockK[blocks] = this.disagrees[j * n + (counted[p] as number)] as number;
      blockW[blocks] = 1;
      blockEnd[blocks] = p;
      blocks++;
      while (blocks > 1) {
        const last = blocks - 1;
        // Merge violators and equal neighbours alike: a flat stretch is one block (one estimate).
        if (
          (blockK[last - 1] as number) / (blockW[last - 1] as number) <
          (blockK[last] as number) / (blockW[last] as number)
        )
          break;
        blockK[last - 1] = (blockK[last - 1] as number) + (blockK[last] as number);
        blockW[last - 1] = (blockW[last - 1] as number) + (blockW[last] as number);
        blockEnd[last - 1] = blockEnd[last] as number;
        blocks--;
      }
    }
    let p = 0;
    for (let b = 0; b < blocks; b++) {
      const value = ((blockK[b] as number) + 0.5) / ((blockW[b] as number) + 1);
      for (; p <= (blockEnd[b] as number); p++) this.disagrees[j * n + (counted[p] as number)] = value;
    }
  }

  /** Rows that can exit at active index j, highest score first: sorted on first use. */
  private order(j: number): Int32Array {
    let order = this.byScore[j];
    if (!order) {
      order = sortByScore(this.scores, this.rows, j);
      this.byScore[j] = order;
    }
    return order;
  }

  /** Threshold vector (indexed like activeRamps, +Infinity = never) from a map. */
  toVector(thresholds: Thresholds): Float64Array {
    return Float64Array.from(this.activeRamps, (id) => thresholds.get(id) ?? Number.POSITIVE_INFINITY);
  }

  /** Map (null = never) from a threshold vector. */
  toThresholds(vector: Float64Array): Map<number, number | null> {
    return thresholdsOf(this.activeRamps, vector);
  }

  /** All-never vector: the setting that can never disagree. */
  neverVector(): Float64Array {
    return new Float64Array(this.activeRamps.length).fill(Number.POSITIVE_INFINITY);
  }

  /** Savings (as in latency-model.ts) for a latency total over this window's rows. */
  savingsOf(latencyTotalMs: number): number {
    if (this.vanillaMs <= 0) return 0;
    const mean = this.rows > 0 ? latencyTotalMs / this.rows : (this.latencyMs[this.activeRamps.length] as number);
    return 1 - mean / this.vanillaMs;
  }

  /** Lowest score at which active ramp index j could still take a row (−Infinity if none can). */
  lowestScore(j: number): number {
    const order = this.order(j);
    return order.length > 0
      ? (this.scores[j * this.rows + (order[order.length - 1] as number)] as number)
      : Number.NEGATIVE_INFINITY;
  }

  /**
   * Candidate thresholds for active ramp index j, highest first, all taken from scores recorded
   * on this window (so each candidate lets at least one more row out than the one before).
   * `count` = 'all': every distinct score. A number: that many rank quantiles, spaced
   * quadratically so they are densest among the highest scores, where thresholds usually sit
   * and where one step moves few rows.
   */
  candidates(j: number, count: number | 'all'): Float64Array {
    const order = this.order(j);
    const column = this.scores.subarray(j * this.rows, (j + 1) * this.rows);
    const out: number[] = [];
    const push = (score: number): void => {
      if (out.length === 0 || score < (out[out.length - 1] as number)) out.push(score);
    };
    if (count === 'all') {
      for (let p = 0; p < order.length; p++) push(column[order[p] as number] as number);
    } else {
      const len = order.length;
      for (let q = 1; q <= count && len > 0; q++) {
        const rank = Math.min(len - 1, Math.max(0, Math.ceil(len * (q / count) ** 2) - 1));
        push(column[order[rank] as number] as number);
      }
    }
    return Float64Array.from(out);
  }

  /** Index of the first active ramp row i exits at under `vector` (m = none: the final layer). */
  private firstExit(vector: Float64Array, i: number, from: number, to: number): number {
    const n = this.rows;
    const scores = this.scores;
    let j = from;
    while (j < to && !((scores[j * n + i] as number) >= (vector[j] as number))) j++;
    return j;
  }

  /** Fills exitIndex for `vector` unless it already holds it (searches sweep one vector many times). */
  private exitsUnder(vector: Float64Array): Int32Array {
    const cached = this.cachedVector;
    const m = this.activeRamps.length;
    const n = this.rows;
    let changed = -1;
    let changes = cached === null || cached.length !== vector.length ? m + 1 : 0;
    for (let j = 0; changes <= 1 && j < m; j++) {
      if (!Object.is(cached?.[j], vector[j])) {
        changes++;
        changed = j;
      }
    }
    if (changes === 0) return this.exitIndex;
    if (changes === 1 && cached) {
      // One threshold moved (the usual step of a coordinate search): only rows that reach it change.
      const tau = vector[changed] as number;
      const offset = changed * n;
      for (let i = 0; i < n; i++) {
        const e = this.exitIndex[i] as number;
        if (e < changed) continue;
        if ((this.scores[offset + i] as number) >= tau) this.exitIndex[i] = changed;
        else if (e === changed) this.exitIndex[i] = this.firstExit(vector, i, changed + 1, m);
      }
      cached[changed] = tau;
    } else {
      for (let i = 0; i < n; i++) this.exitIndex[i] = this.firstExit(vector, i, 0, m);
      this.cachedVector = Float64Array.from(vector);
    }
    return this.exitIndex;
  }

  /** Totals for a threshold vector. */
  totals(vector: Float64Array): WindowTotals {
    const m = this.activeRamps.length;
    const n = this.rows;
    // Through the exit cache: successive settings of a search differ in one threshold.
    const exitIndex = this.exitsUnder(vector);
    const exitCounts = new Int32Array(m);
    let latency = 0;
    let disagreements = 0;
    for (let i = 0; i < n; i++) {
      const j = exitIndex[i] as number;
      latency += this.latencyMs[j] as number;
      if (j < m) {
        exitCounts[j] = (exitCounts[j] as number) + 1;
        disagreements += this.disagrees[j * n + i] as number;
      }
    }
    return { latencyTotalMs: latency, disagreements, exitCounts };
  }

  /** Full per-row evaluation of a setting (a map, or a vector indexed like activeRamps). */
  evaluate(thresholds: Thresholds | Float64Array): WindowEvaluation {
    const vector = thresholds instanceof Float64Array ? thresholds : this.toVector(thresholds);
    const m = this.activeRamps.length;
    const n = this.rows;
    const exits = new Int32Array(n).fill(-1);
    const answers = new Int32Array(n);
    const counts = new Int32Array(m);
    let disagreements = 0;
    for (let i = 0; i < n; i++) {
      const j = this.firstExit(vector, i, 0, m);
      if (j < m) {
        exits[i] = this.activeRamps[j] as number;
        answers[i] = this.argmaxes[j * n + i] as number;
        counts[j] = (counts[j] as number) + 1;
        disagreements += this.disagrees[j * n + i] as number;
      } else {
        answers[i] = this.finalArgmax[i] as number;
      }
    }
    return {
      rows: n,
      countedRows: this.countedRows,
      disagreements,
      disagreementRate: this.countedRows > 0 ? disagreements / this.countedRows : 0,
      ...exitFigures(counts, n, this.options),
      exits,
      answers,
    };
  }

  /**
   * Every candidate value of active ramp index j's threshold at once, the others held at
   * `vector`. `candidates` must be decreasing (as `candidates()` returns them). Entry 0 of the
   * result is ramp j at "never"; entry c + 1 is `candidates[c]`.
   */
  sweep(j: number, vector: Float64Array, candidates: Float64Array): SweepResult {
    const m = this.activeRamps.length;
    const n = this.rows;
    const L = this.latencyMs;
    const disagrees = this.disagrees;
    const reach = this.reach;
    const deltaLatency = this.deltaLatency;
    const deltaDisagree = this.deltaDisagree;
    const ownLatency = L[j] as number;
    const ownOffset = j * n;
    const exitIndex = this.exitsUnder(vector);
    let baseLatency = 0;
    let baseDisagree = 0;
    for (let i = 0; i < n; i++) {
      const e = exitIndex[i] as number;
      if (e < j) {
        // Answered before ramp j whatever its threshold.
        reach[i] = 0;
        baseLatency += L[e] as number;
        baseDisagree += disagrees[e * n + i] as number;
        continue;
      }
      // The next ramp that would take the row if j did not: known unless the row exits at j now.
      const f = e > j ? e : this.firstExit(vector, i, j + 1, m);
      const fallbackLatency = L[f] as number;
      const fallbackDisagree = f < m ? (disagrees[f * n + i] as number) : 0;
      baseLatency += fallbackLatency;
      baseDisagree += fallbackDisagree;
      reach[i] = 1;
      deltaLatency[i] = ownLatency - fallbackLatency;
      deltaDisagree[i] = (disagrees[ownOffset + i] as number) - fallbackDisagree;
    }
    const c = candidates.length;
    const latencyTotalMs = new Float64Array(c + 1);
    const disagreements = new Float64Array(c + 1);
    latencyTotalMs[0] = baseLatency;
    disagreements[0] = baseDisagree;
    const order = this.order(j);
    const len = order.length;
    const scores = this.scores;
    let p = 0;
    let accLatency = 0;
    let accDisagree = 0;
    for (let k = 0; k < c; k++) {
      const tau = candidates[k] as number;
      while (p < len) {
        const i = order[p] as number;
        if (!((scores[ownOffset + i] as number) >= tau)) break;
        if (reach[i] === 1) {
          accLatency += deltaLatency[i] as number;
          accDisagree += deltaDisagree[i] as number;
        }
        p++;
      }
      latencyTotalMs[k + 1] = baseLatency + accLatency;
      disagreements[k + 1] = baseDisagree + accDisagree;
    }
    return { latencyTotalMs, disagreements };
  }

  /**
   * A search from all-never that only loosens thresholds, one ramp at a time, through each
   * ramp's `candidates` (decreasing, as `candidates()` returns them): see LooseningSearch.
   */
  loosening(candidates: readonly Float64Array[]): LooseningSearch {
    return new LooseningSearch(
      {
        rows: this.rows,
        scores: this.scores,
        disagrees: this.disagrees,
        orders: this.activeRamps.map((_, j) => this.order(j)),
        latencyMs: this.latencyMs,
      },
      candidates,
    );
  }
}

/**
 * `sweep` for a search that only loosens (guarded.ts's `frontierPath`): from all-never, each
 * move lowers one ramp's threshold to a later one of its candidates. What moving ramp j from its
 * current candidate to a later one would change is kept per candidate gap ("bucket" k: the rows
 * that ramp j's candidate k lets out and candidate k − 1 did not) — the latency saved and the
 * disagreements added by the rows there that would now exit at j rather than where they exit
 * now, later (rows that exit earlier are not affected) — so reading the next few candidates
 * costs a few additions, not a pass over every row. A move changes where only the rows of the
 * buckets it opens exit, and for each of them the buckets it sits in on the other ramps are
 * corrected; along a whole path a row's exit only moves earlier, at most once per ramp, so the
 * whole path costs O(rows × ramps²) after the sort, against O(rows × ramps) per sweep, ramps
 * sweeps per move, for re-sweeping.
 *
 * The figures are those `sweep` gives (the same rows exit at the same ramps), summed in another
 * order: equal up to floating-point rounding (~1e-12 relative).
 */
export class LooseningSearch {
  private readonly rows: number;
  private readonly m: number;
  private readonly scores: Float64Array;
  private readonly disagrees: Float64Array;
  private readonly orders: readonly Int32Array[];
  private readonly latencyMs: Float64Array;
  /**
   * Per active index j: where in orders[j] each bucket's rows start (candidates.length + 1
   * entries; the last ends the rows the last candidate lets out).
   */
  private readonly bucketStart: Int32Array[];
  /** bucketOf[j * rows + i]: row i's bucket on ramp j (candidates.length when no candidate lets it out there). */
  private readonly bucketOf: Int32Array;
  /** Per active index: its bucket totals, saved latency and added disagreement. */
  private readonly saved: Float64Array[];
  private readonly added: Float64Array[];
  /** Each row's exit under the current thresholds (m: the final layer). */
  private readonly exitIndex: Int32Array;
  /** Per active index: the candidate in force, 0 = never, c = candidates[c − 1]. */
  private readonly positions: Int32Array;
  /** Totals under the current thresholds. */
  latencyTotalMs = 0;
  disagreements = 0;

  constructor(
    columns: {
      rows: number;
      scores: Float64Array;
      disagrees: Float64Array;
      orders: readonly Int32Array[];
      latencyMs: Float64Array;
    },
    candidates: readonly Float64Array[],
  ) {
    const n = columns.rows;
    const m = candidates.length;
    this.rows = n;
    this.m = m;
    this.scores = columns.scores;
    this.disagrees = columns.disagrees;
    this.orders = columns.orders;
    this.latencyMs = columns.latencyMs;
    this.exitIndex = new Int32Array(n).fill(m);
    this.positions = new Int32Array(m);
    this.bucketOf = new Int32Array(m * n);
    this.bucketStart = [];
    this.saved = [];
    this.added = [];
    const L = this.latencyMs;
    const finalMs = L[m] as number;
    this.latencyTotalMs = n * finalMs;
    for (let j = 0; j < m; j++) {
      const cands = candidates[j] as Float64Array;
      const order = this.orders[j] as Int32Array;
      const c = cands.length;
      const starts = new Int32Array(c + 1);
      const saved = new Float64Array(c);
      const added = new Float64Array(c);
      this.bucketOf.fill(c, j * n, (j + 1) * n);
      // Every row starts at the final layer: letting it out at j saves L[m] − L[j] and adds its disagreement there.
      const gain = finalMs - (L[j] as number);
      let p = 0;
      for (let k = 0; k < c; k++) {
        starts[k] = p;
        const tau = cands[k] as number;
        for (; p < order.length; p++) {
          const i = order[p] as number;
          if (!((this.scores[j * n + i] as number) >= tau)) break;
          this.bucketOf[j * n + i] = k;
          saved[k] = (saved[k] as number) + gain;
          added[k] = (added[k] as number) + (this.disagrees[j * n + i] as number);
        }
      }
      starts[c] = p;
      this.bucketStart.push(starts);
      this.saved.push(saved);
      this.added.push(added);
    }
  }

  /** Ramp j's candidate in force (0 = never, c = candidates[c − 1]). */
  position(j: number): number {
    return this.positions[j] as number;
  }

  /** Latency saved by the rows of ramp j's bucket k (those candidate k + 1 lets out and candidate k did not). */
  savedIn(j: number, k: number): number {
    return (this.saved[j] as Float64Array)[k] as number;
  }

  /** Disagreements added by the rows of ramp j's bucket k. */
  addedIn(j: number, k: number): number {
    return (this.added[j] as Float64Array)[k] as number;
  }

  /** Moves ramp j to candidate c (c > its position): the rows it lets out that exited later now exit at j. */
  move(j: number, c: number): void {
    const from = this.positions[j] as number;
    if (!(c > from && c < (this.bucketStart[j] as Int32Array).length))
      throw new RangeError(`ramp index ${j} cannot move from candidate ${from} to ${c}`);
    const n = this.rows;
    const m = this.m;
    const L = this.latencyMs;
    const d = this.disagrees;
    const order = this.orders[j] as Int32Array;
    const starts = this.bucketStart[j] as Int32Array;
    for (let p = starts[from] as number; p < (starts[c] as number); p++) {
      const i = order[p] as number;
      const before = this.exitIndex[i] as number;
      if (before <= j) continue;
      this.exitIndex[i] = j;
      const beforeMs = L[before] as number;
      const beforeDisagrees = before < m ? (d[before * n + i] as number) : 0;
      const nowMs = L[j] as number;
      const nowDisagrees = d[j * n + i] as number;
      this.latencyTotalMs += nowMs - beforeMs;
      this.disagreements += nowDisagrees - beforeDisagrees;
      // On every other ramp r that has not let the row out yet, its bucket's gain was figured from
      // where the row exited (`before`), if that was after r; now from j, if j is after r.
      for (let r = 0; r < m; r++) {
        if (r === j) continue;
        const k = this.bucketOf[r * n + i] as number;
        const saved = this.saved[r] as Float64Array;
        if (k >= saved.length || r >= before) continue;
        const added = this.added[r] as Float64Array;
        const own = d[r * n + i] as number;
        if (r < j) {
          saved[k] = (saved[k] as number) + (nowMs - beforeMs);
          added[k] = (added[k] as number) + (beforeDisagrees - nowDisagrees);
        } else {
          saved[k] = (saved[k] as number) - (beforeMs - (L[r] as number));
          added[k] = (added[k] as number) - (own - beforeDisagrees);
        }
      }
    }
    this.positions[j] = c;
  }
}

/** Convenience: evaluate one setting on a window of records. */
export function evaluateWindow(
  records: readonly FeedbackRecord[],
  thresholds: Thresholds,
  options: WindowEvalOptions,
): WindowEvaluation {
  return new WindowEvaluator(records, options).evaluate(thresholds);
}
