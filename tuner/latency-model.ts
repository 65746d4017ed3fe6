/**
 * Latency arithmetic on a measured profile: how long a row takes to be answered
 * when it exits at ramp k, what the active ramps cost, and the expected saving of an exit
 * distribution against vanilla serving. Pure: the profile comes in as data.
 *
 * Exit ids: a ramped backbone's exits are its ramps, id = the segment the ramp follows. A
 * cascade (src/model/cascade.ts) puts its tiers first: exits 0..T−1 are the tiers (`tierMs`, T
 * = its length), which run before the backbone and cost only themselves, and exit T + r is the
 * backbone's ramp r. Without `tierMs` (T = 0) the two numberings are the same.
 */

export interface LatencyProfileData {
  batchSizes: number[];
  /** The backbone's segments, by segment index. */
  segmentMs: number[][];
  /** The backbone's ramp heads, by ramp id. */
  headMs: number[][];
  fullModelMs: number[];
  /** A cascade's tiers, cheapest first: tierMs[t][i], one call of all of tier t's members at batchSizes[i]. */
  tierMs?: number[][];
}

/** Leading exits that are cascade tiers (0 for a plain ramped backbone). */
export function tierCount(profile: LatencyProfileData): number {
  return profile.tierMs?.length ?? 0;
}

/** What exit `id` adds to every row that reaches it: a tier's members, or a ramp's head. */
export function exitCostMs(profile: LatencyProfileData, id: number, batchSize: number): number {
  const tiers = tierCount(profile);
  return id < tiers
    ? atBatch(profile, profile.tierMs?.[id], batchSize)
    : atBatch(profile, profile.headMs[id - tiers], batchSize);
}

/** A profiled series at a batch size; beyond the largest size, scaled linearly. */
export function atBatch(profile: LatencyProfileData, series: number[] | undefined, batchSize: number): number {
  if (!series || series.length === 0) return 0;
  const i = profile.batchSizes.indexOf(batchSize);
  if (i >= 0) return series[i] as number;
  const sizes = profile.batchSizes;
  let j = 0;
  while (j < sizes.length - 1 && (sizes[j + 1] as number) <= batchSize) j++;
  return ((series[j] as number) * batchSize) / (sizes[j] as number);
}

/**
 * What one segment boundary costs at a batch size: the profiled segments (one per candidate
 * cut) add up to more than the whole model — a session call, the boundary tensor's copy out and
 * back in, fusions onnxruntime cannot make across the cut — and the excess is spread evenly over
 * the boundaries. The engine re-splits at the active ramps (src/model/split-at-ramps.ts), so a
 * boundary with no active ramp is not paid. Checked against bench/segment-granularity.ts at
 * batch 1: predicted 1.10 ms for the model cut at 3 ramps, measured 1.16 ms.
 */
export function boundaryMs(profile: LatencyProfileData, batchSize: number): number {
  const n = profile.segmentMs.length;
  if (n < 2) return 0;
  let segments = 0;
  for (let k = 0; k < n; k++) segments += atBatch(profile, profile.segmentMs[k], batchSize);
  return Math.max(0, (segments - atBatch(profile, profile.fullModelMs, batchSize)) / (n - 1));
}

/**
 * Time until an answer at ramp `rampId` (the model cut at the active ramps, run up to the ramp,
 * plus every active head up to it), or at the final layer when rampId is -1.
 */
export function latencyToAnswer(
  profile: LatencyProfileData,
  activeRamps: readonly number[],
  rampId: number,
  batchSize: number,
): number {
  const tiers = tierCount(profile);
  if (tiers === 0) return backboneLatency(profile, activeRamps, rampId, batchSize);
  // Every active tier up to the exit (all of them for a row the backbone answers) ran on the row.
  let total = 0;
  for (const t of activeRamps)
    if (t < tiers && (rampId < 0 || t <= rampId)) total += atBatch(profile, profile.tierMs?.[t], batchSize);
  if (rampId >= 0 && rampId < tiers) return total;
  const ramps = activeRamps.filter((id) => id >= tiers).map((id) => id - tiers);
  // Without active ramps the engine runs the backbone unsplit.
  if (ramps.length === 0) return total + atBatch(profile, profile.fullModelMs, batchSize);
  return total + backboneLatency(profile, ramps, rampId < 0 ? -1 : rampId - tiers, batchSize);
}

/** latencyToAnswer of the backbone alone: ids are its ramps. */
function backboneLatency(
  profile: LatencyProfileData,
  activeRamps: readonly number[],
  rampId: number,
  batchSize: number,
): number {
  const lastSegment = rampId < 0 ? profile.segmentMs.length - 1 : rampId;
  let total = 0;
  for (let k = 0; k <= lastSegment; k++) total += atBatch(profile, profile.segmentMs[k], batchSize);
  // Boundaries after segments 0..lastSegment − 1 that no active ramp sits on are merged away.
  let merged = 0;
  for (let k = 0; k < lastSegment; k++) if (!activeRamps.includes(k)) merged++;
  total -= merged * boundaryMs(profile, batchSize);
  for (const r of activeRamps) if (rampId < 0 || r <= rampId) total += atBatch(profile, profile.headMs[r], batchSize);
  return total;
}

/** Share of vanilla latency the active heads add to a row that runs to the end. */
export function rampOverheadShare(
  profile: LatencyProfileData,
  activeRamps: readonly number[],
  batchSize: number,
): number {
  const full = atBatch(profile, profile.fullModelMs, batchSize) || 1;
  return activeRamps.reduce((s, r) => s + exitCostMs(profile, r, batchSize), 0) / full;
}

/**
 * Expected saving in time-to-answer against vanilla: 1 − E[latency with exits] / L_vanilla,
 * where exitRates[r] is the share of rows answered at ramp r (the rest at the final layer).
 */
export function estimatedSavings(
  profile: LatencyProfileData,
  activeRamps: readonly number[],
  exitRates: ReadonlyMap<number, number>,
  batchSize: number,
): number {
  const vanilla = atBatch(profile, profile.fullModelMs, batchSize);
  // Without ramps the engine runs the unsplit model: vanilla itself, whatever the segments' sum says.
  if (vanilla <= 0 || activeRamps.length === 0) return 0;
  let expected = 0;
  let exited = 0;
  for (const r of activeRamps) {
    const rate = exitRates.get(r) ?? 0;
    expected += rate * latencyToAnswer(profile, activeRamps, r, batchSize);
    exited += rate;
  }
  expected += Math.max(0, 1 - exited) * latencyToAnswer(profile, activeRamps, -1, batchSize);
  return 1 - expected / vanilla;
}
