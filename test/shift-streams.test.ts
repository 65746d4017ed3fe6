// The shift streams (test/fixtures/shift-streams.ts) the tuner is evaluated on: their shape
// (length, change rows), that no recorded row is served twice and no clean input was recorded
// twice, that they are deterministic, and that the image streams really shift — the ramps'
// agreement with the final layer, or the class mix, differs before and after the change by a
// clear margin, measured on the stream itself. The text stream changes spam campaigns, which
// spam-bert's ramps turn out not to notice: a control.
import { beforeAll, describe, expect, it } from 'vitest';
import type { FeedbackRecord } from '../tuner/feedback-record.js';
import { parseTraceHeader } from '../tuner/replay.js';
import {
  CLEAN_OFFSETS,
  cleanOffset,
  composeStream,
  loadSources,
  SHIFT_SOURCES,
  STREAM_NAMES,
  type RowOrigin,
  type ShiftStream,
  type SourceKind,
  type SourceTrace,
  type StreamChange,
  type StreamName,
} from './fixtures/shift-streams.js';
import { confidentAgreement, easyClasses } from './fixtures/trace-stats.js';

const IMAGE_ROWS = 40_000;
const ROWS: Record<StreamName, number> = {
  stationary: IMAGE_ROWS,
  'noise-sudden': IMAGE_ROWS,
  'blur-gradual': IMAGE_ROWS,
  'contrast-sudden': IMAGE_ROWS,
  'classmix-sudden': IMAGE_ROWS,
  'classmix-gradual': IMAGE_ROWS,
  'spam-campaign': 8_000,
};
const MODEL: Record<StreamName, string> = {
  stationary: 'fmnist-resnet',
  'noise-sudden': 'fmnist-resnet',
  'blur-gradual': 'fmnist-resnet',
  'contrast-sudden': 'fmnist-resnet',
  'classmix-sudden': 'fmnist-resnet',
  'classmix-gradual': 'fmnist-resnet',
  'spam-campaign': 'spam-bert',
};
const EXPECTED_CHANGES: Record<StreamName, StreamChange[]> = {
  stationary: [],
  'noise-sudden': [{ row: 20_000, kind: 'sudden', settledAt: 20_000 }],
  'blur-gradual': [{ row: 15_000, kind: 'gradual', settledAt: 25_000 }],
  'contrast-sudden': [{ row: 20_000, kind: 'sudden', settledAt: 20_000 }],
  'classmix-sudden': [{ row: 20_000, kind: 'sudden', settledAt: 20_000 }],
  'classmix-gradual': [{ row: 15_000, kind: 'gradual', settledAt: 25_000 }],
  'spam-campaign': [{ row: 4_000, kind: 'sudden', settledAt: 4_000 }],
};
/** The shifted pool of each covariate stream. */
const SHIFTED_KIND: Partial<Record<StreamName, SourceKind>> = {
  'noise-sudden': 'noise',
  'blur-gradual': 'blur',
  'contrast-sudden': 'contrast',
};
/** Ramps whose confident agreement the covariate shifts must lower (the early ones; late ramps agree almost always). */
const EARLY_RAMPS = [0, 1, 2];
/**
 * Least drop, in agreement of an early ramp's 50 % most confident rows, that counts as a shift.
 * Measured drops: noise 6.5 points on ramp 0 (the least), blur 7–8 points per ramp, the class
 * mix 5.4 on ramp 2; on 20,000 rows, sampling noise is ≈ 0.4 points, and the stationary stream's
 * halves differ by < 1.
 */
const MIN_AGREEMENT_DROP = 0.04;

/** Rows of each source: the Fashion-MNIST test split, row i the test image i. */
const TEST_IMAGES = 10_000;
/** Test images whose clean copies may share readings although translated differently (saturated; 17 now). */
const MAX_SATURATED_REPEATS = 50;

const kindOf = new Map(SHIFT_SOURCES.map((s) => [s.name, s.kind]));

function meanAgreement(records: readonly FeedbackRecord[]): number {
  return EARLY_RAMPS.reduce((sum, id) => sum + confidentAgreement(records, id), 0) / EARLY_RAMPS.length;
}

/** Before the first change, and from where the last one settled. */
function phases(stream: ShiftStream): { before: FeedbackRecord[]; after: FeedbackRecord[] } {
  const half = stream.records.length / 2;
  const first = stream.changes[0] ?? { row: half, settledAt: half };
  return { before: stream.records.slice(0, first.row), after: stream.records.slice(first.settledAt) };
}

describe('shift streams', () => {
  let sources: Map<string, SourceTrace>;
  const streams = new Map<StreamName, ShiftStream>();
  let easy: Set<number>;

  beforeAll(async () => {
    sources = await loadSources(SHIFT_SOURCES.map((s) => s.name));
    for (const name of STREAM_NAMES) streams.set(name, composeStream(name, sources));
    easy = new Set(
      easyClasses(SHIFT_SOURCES.filter((s) => s.kind === 'clean').flatMap((s) => sources.get(s.name)?.records ?? [])),
    );
  }, 60_000);

  const stream = (name: StreamName): ShiftStream => streams.get(name) as ShiftStream;

  it('there are at least five, each of the stated length with the stated change rows', () => {
    expect(STREAM_NAMES.length).toBeGreaterThanOrEqual(5);
    expect([...STREAM_NAMES].sort()).toEqual(Object.keys(EXPECTED_CHANGES).sort());
    for (const name of STREAM_NAMES) {
      const s = stream(name);
      expect(s.name).toBe(name);
      expect(s.records).toHaveLength(ROWS[name]);
      expect(s.origins).toHaveLength(ROWS[name]);
      expect(s.changes).toEqual(EXPECTED_CHANGES[name]);
      expect(s.description).not.toBe('');
    }
  });

  it('never serves a recorded row twice, and every origin points at the record served', () => {
    for (const name of STREAM_NAMES) {
      const s = stream(name);
      const keys = new Set(s.origins.map((o) => `${o.source}:${o.row}`));
      expect(keys.size, name).toBe(ROWS[name]);
      const misplaced = s.origins.filter((o, i) => sources.get(o.source)?.records[o.row] !== s.records[i]);
      expect(misplaced, name).toEqual([]);
    }
  });

  it('recorded no clean input twice: no two clean rows share (test image, offset)', () => {
    const clean = SHIFT_SOURCES.filter((s) => s.kind === 'clean');
    expect(clean.length).toBeLessThanOrEqual(CLEAN_OFFSETS.length);
    const inputs = new Set<string>();
    const readingsOf = new Map<number, Set<string>>();
    for (const source of clean) {
      const records = sources.get(source.name)?.records ?? [];
      expect(records, source.name).toHaveLength(TEST_IMAGES);
      records.forEach((record, image) => {
        const { dx, dy } = cleanOffset(image, source.copy);
        expect(Math.max(Math.abs(dx), Math.abs(dy))).toBeLessThanOrEqual(1);
        inputs.add(`${image}:${dx},${dy}`);
        const readings = readingsOf.get(image) ?? new Set<string>();
        readings.add(JSON.stringify([record.ramps, record.final]));
        readingsOf.set(image, readings);
      });
    }
    expect(inputs.size).toBe(clean.length * TEST_IMAGES);
    // The recorded rows bear it out: an input recorded twice repeats its readings exactly, as
    // 1,120 of the 10,000 test images did under the former flip + 2 px draws. Different inputs
    // share readings only when the model is all but certain (17 images here, every confidence
    // ≥ 0.99995, where 5 significant digits leave nothing to tell them apart).
    const repeated = [...readingsOf.values()].filter((r) => r.size < clean.length).length;
    expect(repeated).toBeLessThan(MAX_SATURATED_REPEATS);
  });

  it('is deterministic: the same seed gives the same order, another seed another one', () => {
    for (const name of ['stationary', 'blur-gradual', 'classmix-gradual', 'spam-campaign'] as const) {
      const again = composeStream(name, sources);
      expect(again.origins).toEqual(stream(name).origins);
      const other = composeStream(name, sources, stream(name).seed + 1);
      expect(other.origins).not.toEqual(stream(name).origins);
      expect(other.changes).toEqual(stream(name).changes);
    }
  });

  it('carries a valid trace header with every ramp and its solo-exit curve', () => {
    for (const name of STREAM_NAMES) {
      const header = parseTraceHeader(JSON.parse(JSON.stringify(stream(name).header)));
      expect(header.model).toBe(MODEL[name]);
      expect(header.ramps.map((r) => r.id)).toEqual(header.ramps.map((_, i) => i));
      expect(header.ramps.length).toBeGreaterThan(EARLY_RAMPS.length);
      for (const ramp of header.ramps) expect(ramp.soloCurve?.length).toBeGreaterThan(0);
    }
  });

  it('stationary: clean rows only, and the two halves agree alike', () => {
    const s = stream('stationary');
    expect(new Set(s.origins.map((o) => kindOf.get(o.source)))).toEqual(new Set(['clean']));
    const { before, after } = phases(s);
    expect(Math.abs(meanAgreement(before) - meanAgreement(after))).toBeLessThan(0.01);
  });

  it('covariate shifts: clean before, shifted after, and the early ramps agree clearly less after', () => {
    for (const [name, kind] of Object.entries(SHIFTED_KIND) as [StreamName, SourceKind][]) {
      const s = stream(name);
      const change = s.changes[0] as StreamChange;
      const kinds = s.origins.map((o) => kindOf.get(o.source));
      expect(new Set(kinds.slice(0, change.row)), name).toEqual(new Set(['clean']));
      expect(new Set(kinds.slice(change.settledAt)), name).toEqual(new Set([kind]));
      const { before, after } = phases(s);
      for (const id of EARLY_RAMPS) {
        const drop = confidentAgreement(before, id) - confidentAgreement(after, id);
        expect(drop, `${name} ramp ${id}`).toBeGreaterThan(MIN_AGREEMENT_DROP);
      }
    }
  });

  it('class-mix shifts: the easy classes before, the hard ones after, and the ramps agree clearly less after', () => {
    for (const name of ['classmix-sudden', 'classmix-gradual'] as const) {
      const s = stream(name);
      expect(new Set(s.origins.map((o) => kindOf.get(o.source)))).toEqual(new Set(['clean']));
      const { before, after } = phases(s);
      expect(before.every((r) => easy.has(r.label ?? -1))).toBe(true);
      expect(after.every((r) => !easy.has(r.label ?? -1))).toBe(true);
      expect(meanAgreement(before) - meanAgreement(after)).toBeGreaterThan(MIN_AGREEMENT_DROP);
    }
  });

  it('gradual changes: the new traffic’s share rises linearly across the change, window by window', () => {
    const isNew: Record<'blur-gradual' | 'classmix-gradual', (r: FeedbackRecord, o: RowOrigin) => boolean> = {
      'blur-gradual': (_r, o) => kindOf.get(o.source) === 'blur',
      'classmix-gradual': (r) => !easy.has(r.label ?? -1),
    };
    for (const [name, test] of Object.entries(isNew) as [keyof typeof isNew, (typeof isNew)[keyof typeof isNew]][]) {
      const s = stream(name);
      const change = s.changes[0] as StreamChange;
      const windows = (change.settledAt - change.row) / 1000;
      for (let w = 0; w < windows; w++) {
        const start = change.row + w * 1000;
        let n = 0;
        for (let i = start; i < start + 1000; i++)
          if (test(s.records[i] as FeedbackRecord, s.origins[i] as RowOrigin)) n++;
        expect(n / 1000, `${name} window ${w}`).toBeCloseTo((w + 0.5) / windows, 2);
      }
    }
  });

  it('spam campaign: ham and the old campaigns, then ham and the new ones, in the same proportion', () => {
    const s = stream('spam-campaign');
    const change = (s.changes[0] as StreamChange).row;
    const kinds = s.origins.map((o) => kindOf.get(o.source));
    expect(new Set(kinds.slice(0, change))).toEqual(new Set(['ham', 'spam-1']));
    expect(new Set(kinds.slice(change))).toEqual(new Set(['ham', 'spam-2']));
    const { before, after } = phases(s);
    const spamShare = (records: readonly FeedbackRecord[]): number =>
      records.filter((r) => r.label === 1).length / records.length;
    expect(spamShare(before)).toBeCloseTo(spamShare(after), 2);
    // Measured, not wished: spam-bert's ramps agree with its final layer alike on both campaigns
    // (early ramps within a point), so this stream is a control: a tuner should hold steady.
    expect(Math.abs(meanAgreement(before) - meanAgreement(after))).toBeLessThan(0.02);
  });
});
