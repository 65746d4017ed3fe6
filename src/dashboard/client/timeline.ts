/**
 * The page's memory of the stream: the snapshots of the last `keepMs` (the server's ring buffer
 * reach, ~15 min), in time order, each flagged when something is missing before it, and the
 * chart columns read from them. Pure (no DOM): test/dashboard-client.test.ts runs it in Node.
 *
 * Invariants: entries are in strictly increasing `t` (uPlot needs an ascending x); a snapshot at
 * or before the newest one is a duplicate (a reconnect that replays what the page already has) and
 * is dropped; every column has one value per x, null where there is nothing to draw, so uPlot
 * breaks the line there.
 */

import type { ModelSnapshot, Snapshot, TuningEvent } from '../protocol.js';

export interface TimelineEntry {
  readonly snapshot: Snapshot;
  /**
   * Something is missing between the previous entry and this one: the server stopped sampling
   * (`afterGap`), or snapshots were lost (the sequence skips, as after a reconnect the ring buffer
   * no longer reached back for, or a server restart).
   */
  readonly gapBefore: boolean;
}

export class Timeline {
  readonly #entries: TimelineEntry[] = [];

  constructor(readonly keepMs: number) {}

  /** Adds a snapshot; false (and nothing changes) if it is not newer than the newest one held. */
  add(snapshot: Snapshot): boolean {
    const previous = this.#entries.at(-1)?.snapshot;
    if (previous !== undefined && snapshot.t <= previous.t) return false;
    const gapBefore = previous !== undefined && (snapshot.afterGap || snapshot.seq !== previous.seq + 1);
    this.#entries.push({ snapshot, gapBefore });
    const oldest = snapshot.t - this.keepMs;
    let drop = 0;
    while (drop < this.#entries.length && this.#entries[drop]!.snapshot.t < oldest) drop++;
    if (drop > 0) this.#entries.splice(0, drop);
    return true;
  }

  get entries(): readonly TimelineEntry[] {
    return this.#entries;
  }

  get latest(): Snapshot | undefined {
    return this.#entries.at(-1)?.snapshot;
  }

  /** The entries taken within `ms` before the newest one (the newest included). */
  recent(ms: number): readonly TimelineEntry[] {
    const newest = this.latest;
    if (newest === undefined) return [];
    const from = newest.t - ms;
    let start = this.#entries.length;
    while (start > 0 && this.#entries[start - 1]!.snapshot.t > from) start--;
    return this.#entries.slice(start);
  }
}

export type Column = (number | null)[];

/** Chart data on a time axis: x in epoch seconds (uPlot's time unit), one column per series key. */
export interface TimeColumns<K extends string> {
  x: number[];
  y: Record<K, Column>;
}

/** Reads one value of a series from a model's part of a snapshot (null: nothing to draw). */
export type Extractor = (model: ModelSnapshot, snapshot: Snapshot) => number | null;

/**
 * One column per extractor for `model`. Before an entry with `gapBefore`, a row of nulls halfway
 * between it and its predecessor breaks every line; a snapshot without the model (loaded later,
 * unloaded) is a row of nulls.
 */
export function timeColumns<K extends string>(
  entries: readonly TimelineEntry[],
  model: string,
  extractors: Record<K, Extractor>,
): TimeColumns<K> {
  const keys = Object.keys(extractors) as K[];
  const x: number[] = [];
  const y = Object.fromEntries(keys.map((key) => [key, [] as Column])) as Record<K, Column>;
  let previousT: number | undefined;
  for (const { snapshot, gapBefore } of entries) {
    if (gapBefore && previousT !== undefined) {
      x.push((previousT + snapshot.t) / 2000);
      for (const key of keys) y[key].push(null);
    }
    x.push(snapshot.t / 1000);
    const modelSnapshot = snapshot.models[model];
    for (const key of keys) y[key].push(modelSnapshot === undefined ? null : extractors[key](modelSnapshot, snapshot));
    previousT = snapshot.t;
  }
  return { x, y };
}

/**
 * An exit's share of the interval's answers: 0 for an exit that answered none while others did,
 * null when nothing was answered (`exitShares` is then {}).
 */
export function exitShare(model: ModelSnapshot, exit: string): number | null {
  const share = model.exitShares[exit];
  if (share !== undefined) return share;
  return Object.keys(model.exitShares).length > 0 ? 0 : null;
}

/**
 * Running sums of `columns` (the first, the first two, …) for a stacked area chart: the i-th
 * result is the upper edge of the i-th band. A null anywhere in a row makes the row null from there.
 */
export function stackColumns(columns: readonly Column[]): Column[] {
  const stacked: Column[] = [];
  let below: Column | undefined;
  for (const column of columns) {
    const sums = column.map((value, i) => {
      if (value === null) return null;
      if (below === undefined) return value;
      const base = below[i];
      return base === null || base === undefined ? null : base + value;
    });
    stacked.push(sums);
    below = sums;
  }
  return stacked;
}

/** Every tuning event of `model` in the entries, oldest first. */
export function modelEvents(entries: readonly TimelineEntry[], model: string): TuningEvent[] {
  return entries.flatMap(({ snapshot }) => snapshot.models[model]?.events ?? []);
}

/**
 * The order snapshots arrive in, counted against the one received before: a seq more than one
 * past it is a skip (snapshots lost between), one at or before it a repeat. A resume with
 * Last-Event-ID has neither; a new EventSource after the browser gave up gets the ring buffer
 * again, and a restarted server numbers from the start again (each a repeat). The page shows the
 * counts to tests only (app.ts); the Timeline itself drops repeats and marks skips as gaps.
 */
export class SeqWatch {
  /** The seq received last; undefined before the first. */
  latest: number | undefined;
  skips = 0;
  repeats = 0;

  see(seq: number): void {
    if (this.latest !== undefined) {
      if (seq <= this.latest) this.repeats++;
      else if (seq > this.latest + 1) this.skips++;
    }
    this.latest = seq;
  }
}
