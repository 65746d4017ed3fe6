/**
 * Running totals of a learned path on a sliding set of rows: for each setting of the path, how
 * many rows exit at each active ramp, how many of them disagree with the full model, and so what
 * the rows cost — what `testPath` needs of its test rows — kept up to date as rows join (a
 * batch came in) and leave (it fell out of the tuning window), instead of re-deciding every row
 * under every setting at each re-tune (guarded-tuner.ts).
 *
 * Why this is cheap: along a learned path every threshold only falls (`frontierPath` loosens
 * one ramp per step), so a row that may exit at ramp j under setting s may there under every
 * later setting too, and where a row exits can only move earlier along the path. Each row
 * therefore exits at one place over each of at most m + 1 runs of consecutive settings, found
 * by one binary search per ramp over the path; a row is added (or removed) by adding (or
 * subtracting) its runs to difference arrays over the settings, in O(m log steps), and the
 * totals of every setting are their prefix sums, in O(steps × m).
 *
 * The totals are integers (exit counts and 0/1 disagreements), so adding and removing rows
 * leaves no rounding behind, and a setting's latency total is computed from its exit counts
 * (Σ count × time to answer there): the same exit counts give the same total, whichever rows
 * produced them. Which ramp takes a row and what that costs come from window-eval.ts
 * (`readRowColumns`: the row's score where it may exit, and its disagreement; `exitLatencies`:
 * latency-model.ts's time to answer), so a tally decides rows exactly as a WindowEvaluator does.
 */
import type { FeedbackRecord } from './feedback-record.js';
import {
  exitFigures,
  exitLatencies,
  readRowColumns,
  type WindowEvalOptions,
  type WindowEvaluation,
} from './window-eval.js';

/**
 * Rows in arrival order, each with a key that grows from row to row (the guarded tuner's: the
 * row's position among all rows observed), and what is kept of each (its record, by default): a
 * queue, with lookup by key.
 */
export class KeyedRows<T = FeedbackRecord> {
  private keys: number[] = [];
  private records: T[] = [];
  /** Index of the oldest row still held; entries before it are dropped lazily (see compact). */
  private head = 0;

  get length(): number {
    return this.keys.length - this.head;
  }

  /** Key of the i-th row held (0 = oldest). */
  keyAt(i: number): number {
    return this.keys[this.head + i] as number;
  }

  /** What is kept of the i-th row held (0 = oldest). */
  at(i: number): T {
    return this.records[this.head + i] as T;
  }

  /** The newest row's key; −Infinity when empty. */
  get lastKey(): number {
    return this.length > 0 ? (this.keys[this.keys.length - 1] as number) : Number.NEGATIVE_INFINITY;
  }

  /** Appends a row; its key must be larger than every key held. */
  push(key: number, record: T): void {
    if (!(key > this.lastKey)) throw new RangeError(`keys must grow: ${key} after ${this.lastKey}`);
    this.keys.push(key);
    this.records.push(record);
  }

  /** Removes and returns the oldest row. */
  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const record = this.records[this.head] as T;
    this.head++;
    this.compact();
    return record;
  }

  /** Index (0 = oldest) of the first row whose key is ≥ `key` (`length` if none). */
  indexOfKey(key: number): number {
    let lo = this.head;
    let hi = this.keys.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((this.keys[mid] as number) < key) lo = mid + 1;
      else hi = mid;
    }
    return lo - this.head;
  }

  /** Drops every row whose key is < `key`. */
  dropBefore(key: number): void {
    this.head += this.indexOfKey(key);
    this.compact();
  }

  /** The records from index `from` (0 = oldest) to `to` (exclusive; default: to the newest). */
  slice(from: number, to = this.length): T[] {
    return this.records.slice(this.head + from, this.head + to);
  }

  /** Drops dropped entries once they are most of the arrays: amortized O(1) per row. */
  private compact(): void {
    if (this.head < 1024 || 2 * this.head < this.keys.length) return;
    this.keys = this.keys.slice(this.head);
    this.records = this.records.slice(this.head);
    this.head = 0;
  }
}

/** What a tally knows of one setting of its path (or of all-never): as WindowEvaluator.evaluate reports it, and the latency total. */
export interface TallyFigures extends Pick<
  WindowEvaluation,
  'rows' | 'countedRows' | 'disagreements' | 'disagreementRate' | 'exitRates' | 'savings'
> {
  latencyTotalMs: number;
}

/** Per-setting totals of a fixed path, for a fixed set of active ramps, over a queue of rows. */
export class PathTally {
  /** Settings on the path. */
  readonly steps: number;
  readonly path: readonly Float64Array[];
  readonly options: WindowEvalOptions;
  private readonly m: number;
  private readonly latencyMs: Float64Array;
  /** The path's thresholds, ramp-major: thresholds[j * steps + s] = path[s][j] (binary searches run along a ramp). */
  private readonly thresholds: Float64Array;
  /**
   * The rows held, each as what its runs are made of (`place`): per active index, the first
   * setting that lets it out there, then per active index 1 where it would disagree there, then
   * 1 when its final answer is known. Kept so that a row leaves without being read again.
   */
  private readonly rowsHeld = new KeyedRows<Int32Array>();
  private counted = 0;
  /**
   * Difference arrays over settings: exitDiff[s * (m + 1) + e] is the change, from setting
   * s − 1 to s, in rows exiting at active index e (m: the final layer); disagreeDiff[s] likewise
   * for disagreements. One entry past the last setting, where runs that reach the end close.
   */
  private readonly exitDiff: Int32Array;
  private readonly disagreeDiff: Int32Array;
  /** Prefix sums of the difference arrays (exitCounts[s * (m + 1) + e], disagreements[s]), when `fresh`. */
  private readonly exitCounts: Int32Array;
  private readonly disagreements: Int32Array;
  private fresh = true;
  /** One row's columns (readRowColumns), reused. */
  private readonly row: { scores: Float64Array; argmaxes: Int32Array; disagrees: Float64Array };

  /**
   * `path`: threshold vectors indexed like `options.activeRamps` (+Infinity = never), strict to
   * loose: no threshold may rise from one setting to the next (a RangeError otherwise).
   */
  constructor(path: readonly Float64Array[], options: WindowEvalOptions) {
    const m = options.activeRamps.length;
    const steps = path.length;
    this.m = m;
    this.steps = steps;
    this.path = path;
    this.options = options;
    this.latencyMs = exitLatencies(options);
    this.thresholds = new Float64Array(m * steps);
    path.forEach((vector, s) => {
      if (vector.length !== m) throw new RangeError(`setting ${s} has ${vector.length} thresholds for ${m} ramps`);
      for (let j = 0; j < m; j++) {
        const t = vector[j] as number;
        // NaN fails this too: no row could be placed on such a path.
        if (s > 0 && !(t <= (this.thresholds[j * steps + s - 1] as number)))
          throw new RangeError(`threshold of ramp ${options.activeRamps[j]} rises at setting ${s} of the path`);
        this.thresholds[j * steps + s] = t;
      }
    });
    this.exitDiff = new Int32Array((steps + 1) * (m + 1));
    this.disagreeDiff = new Int32Array(steps + 1);
    this.exitCounts = new Int32Array(steps * (m + 1));
    this.disagreements = new Int32Array(steps);
    this.row = { scores: new Float64Array(m), argmaxes: new Int32Array(m), disagrees: new Float64Array(m) };
  }

  get rows(): number {
    return this.rowsHeld.length;
  }

  /** Rows whose final answer is known. */
  get countedRows(): number {
    return this.counted;
  }

  /** Key of the newest row held (−Infinity when empty). */
  get lastKey(): number {
    return this.rowsHeld.lastKey;
  }

  /** Adds a row; keys must grow from row to row. */
  add(key: number, record: FeedbackRecord): void {
    const placed = this.place(record);
    this.rowsHeld.push(key, placed);
    this.tally(placed, 1);
  }

  /** Removes every row whose key is < `key`. */
  dropBefore(key: number): void {
    while (this.rowsHeld.length > 0 && this.rowsHeld.keyAt(0) < key) this.removeOldest();
  }

  /** Removes the oldest rows until at most `rows` are left. */
  keepLast(rows: number): void {
    while (this.rowsHeld.length > rows) this.removeOldest();
  }

  /** Figures of setting `step` of the path, or of all-never ('never'), on the rows held. */
  figures(step: number | 'never'): TallyFigures {
    const m = this.m;
    const rows = this.rowsHeld.length;
    let counts: Int32Array;
    let disagreements = 0;
    if (step === 'never') {
      counts = new Int32Array(m + 1);
      counts[m] = rows;
    } else {
      if (!(Number.isInteger(step) && step >= 0 && step < this.steps))
        throw new RangeError(`no setting ${step} on a path of ${this.steps}`);
      this.refresh();
      counts = this.exitCounts.subarray(step * (m + 1), (step + 1) * (m + 1));
      disagreements = this.disagreements[step] as number;
    }
    return {
      rows,
      countedRows: this.counted,
      disagreements,
      disagreementRate: this.counted > 0 ? disagreements / this.counted : 0,
      ...exitFigures(counts, rows, this.options),
      latencyTotalMs: this.latencyOf(counts),
    };
  }

  /** Latency total of setting `step` (Σ over exits of rows there × time to answer there). */
  latencyTotalMs(step: number): number {
    this.refresh();
    return this.latencyOf(this.exitCounts.subarray(step * (this.m + 1), (step + 1) * (this.m + 1)));
  }

  /** Disagreements of setting `step` on the rows held. */
  disagreementsAt(step: number): number {
    this.refresh();
    return this.disagreements[step] as number;
  }

  private latencyOf(counts: Int32Array): number {
    let total = 0;
    for (let e = 0; e <= this.m; e++) total += (counts[e] as number) * (this.latencyMs[e] as number);
    return total;
  }

  private removeOldest(): void {
    this.tally(this.rowsHeld.shift() as Int32Array, -1);
  }

  /**
   * Where a row stands on the path (see `rowsHeld`): for each active ramp, the first setting
   * whose threshold its score clears — the comparison every evaluation makes, score ≥ threshold
   * — or `steps` if none does. Thresholds only fall along the path, so once cleared a threshold
   * stays cleared: a binary search finds it.
   */
  private place(record: FeedbackRecord): Int32Array {
    const m = this.m;
    const row = this.row;
    const counted = readRowColumns(record, this.options.activeRamps, this.options.rule, row, 0, 1);
    const placed = new Int32Array(2 * m + 1);
    for (let j = 0; j < m; j++) {
      const score = row.scores[j] as number;
      const offset = j * this.steps;
      let lo = 0;
      let hi = this.steps;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (score >= (this.thresholds[offset + mid] as number)) hi = mid;
        else lo = mid + 1;
      }
      placed[j] = lo;
      placed[m + j] = row.disagrees[j] as number;
    }
    placed[2 * m] = counted ? 1 : 0;
    return placed;
  }

  /**
   * Adds (sign 1) or subtracts (−1) one row's runs: going along the ramps in model order, ramp
   * j takes the row from the first setting that lets it out there until the first setting at
   * which an earlier ramp already does; the final layer takes it before any ramp does.
   */
  private tally(placed: Int32Array, sign: 1 | -1): void {
    const m = this.m;
    /** From this setting on, an earlier ramp answers the row. */
    let until = this.steps;
    for (let j = 0; j < m && until > 0; j++) {
      const from = placed[j] as number;
      if (from >= until) continue;
      this.run(j, from, until, sign, placed[m + j] as number);
      until = from;
    }
    this.run(m, 0, until, sign, 0);
    if (placed[2 * m] === 1) this.counted += sign;
    this.fresh = false;
  }

  /** Exit at active index e (m: the final layer) over settings [from, until), with `disagrees` 0 or 1. */
  private run(e: number, from: number, until: number, sign: 1 | -1, disagrees: number): void {
    if (from >= until) return;
    const stride = this.m + 1;
    this.exitDiff[from * stride + e] = (this.exitDiff[from * stride + e] as number) + sign;
    this.exitDiff[until * stride + e] = (this.exitDiff[until * stride + e] as number) - sign;
    if (disagrees !== 0) {
      this.disagreeDiff[from] = (this.disagreeDiff[from] as number) + sign;
      this.disagreeDiff[until] = (this.disagreeDiff[until] as number) - sign;
    }
  }

  private refresh(): void {
    if (this.fresh) return;
    const stride = this.m + 1;
    const running = new Int32Array(stride);
    let disagreements = 0;
    for (let s = 0; s < this.steps; s++) {
      for (let e = 0; e < stride; e++) {
        running[e] = (running[e] as number) + (this.exitDiff[s * stride + e] as number);
        this.exitCounts[s * stride + e] = running[e] as number;
      }
      disagreements += this.disagreeDiff[s] as number;
      this.disagreements[s] = disagreements;
    }
    this.fresh = true;
  }
}
