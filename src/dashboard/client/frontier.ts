/**
 * The latency–throughput frontier panel's data: the live operating point from the stream and the
 * curves of a FrontierReport aligned on one throughput axis (uPlot draws series over a shared x).
 * Pure (no DOM): tested in Node.
 */

import type { FrontierCurve, ModelSnapshot } from '../protocol.js';
import type { Column, TimelineEntry } from './timeline.js';

export type LatencyKey = keyof NonNullable<ModelSnapshot['latencyMs']>;

/**
 * Which of the snapshot's percentiles stands for the SLO's (0..100): the smallest one at or
 * above it (p50, p95, p99), so a percentile the snapshots do not carry is judged conservatively.
 */
export function latencyKeyFor(percentile: number): LatencyKey {
  if (percentile <= 50) return 'p50';
  if (percentile <= 95) return 'p95';
  return 'p99';
}

export interface OperatingPoint {
  throughputRps: number;
  latencyMs: number;
  latencyKey: LatencyKey;
}

/**
 * Where the model runs now: answers per second over `entries` (time-weighted), and the latency at
 * the SLO's percentile weighted by each interval's answers (an approximation: percentiles do not
 * average exactly, but over a few seconds of steady load the error is small). Null with no answers.
 */
export function operatingPoint(
  entries: readonly TimelineEntry[],
  model: string,
  percentile: number,
): OperatingPoint | null {
  const latencyKey = latencyKeyFor(percentile);
  let seconds = 0;
  let answers = 0;
  let weightedLatency = 0;
  let latencyWeight = 0;
  for (const { snapshot } of entries) {
    const modelSnapshot = snapshot.models[model];
    if (modelSnapshot === undefined) continue;
    const intervalAnswers = modelSnapshot.answersPerS * snapshot.intervalS;
    seconds += snapshot.intervalS;
    answers += intervalAnswers;
    if (modelSnapshot.latencyMs !== null && intervalAnswers > 0) {
      weightedLatency += modelSnapshot.latencyMs[latencyKey] * intervalAnswers;
      latencyWeight += intervalAnswers;
    }
  }
  if (seconds === 0 || latencyWeight === 0) return null;
  return { throughputRps: answers / seconds, latencyMs: weightedLatency / latencyWeight, latencyKey };
}

export interface AlignedCurves {
  /** Every throughput any curve has a point at, ascending, each once. */
  x: number[];
  /** Per curve, its latency at each x, null where it has no point (drawn with spanGaps). */
  y: Column[];
}

/** The curves on one x axis; a curve with two points at one throughput keeps the last. */
export function alignCurves(curves: readonly FrontierCurve[]): AlignedCurves {
  const x = [...new Set(curves.flatMap((curve) => curve.points.map((point) => point.throughputRps)))].sort(
    (a, b) => a - b,
  );
  const index = new Map(x.map((value, i) => [value, i]));
  const y = curves.map((curve) => {
    const column: Column = new Array<number | null>(x.length).fill(null);
    for (const point of curve.points) column[index.get(point.throughputRps)!] = point.latencyMs;
    return column;
  });
  return { x, y };
}
