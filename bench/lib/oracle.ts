/**
 * The oracle policy, computed rather than served: every request exits at the earliest ramp whose
 * class equals the full model's (known from the recorded trace), so it never disagrees with the
 * full model and pays no head cost — a bound no real policy reaches.
 *
 * Its latency is approximated from vanilla's run on the same schedule (same request, same
 * position, same queueing): vanilla's measured latency minus the compute the exit skips,
 *
 *     skipped = L_full(b) · (1 − computeBefore_k)
 *
 * where b is vanilla's mean batch size in that run (from the server's batch-size histogram),
 * L_full(b) the manifest profile's full-model ms at b, and computeBefore_k the share of the
 * model's FLOPs before ramp k (the latency up to and including ramp k is taken as that share of
 * L_full rather than read from the segment profile: a cut model runs slower than the whole one,
 * and the oracle is meant as a bound on what skipping compute can give). The profile
 * series is first made non-decreasing from the right (a batch cannot take longer than a larger
 * one; noise only adds time), and `skipped` is capped at (1 − computeBefore_k) of the request's own
 * latency. The approximation ignores that earlier answers would shorten queues for later ones,
 * so at high load it is optimistic about compute and pessimistic about queueing.
 */
import type { PreparedManifest } from '../../src/model/manifest.js';
import { atBatch } from '../../tuner/latency-model.js';
import type { OpenLoopResult } from '../load/load-types.js';
import type { ItemTrace } from './trace.js';

/** Running minimum from the right: series[i] ≤ series[j] for i < j. */
function lowerEnvelope(series: readonly number[]): number[] {
  const out = [...series];
  for (let i = out.length - 2; i >= 0; i--) out[i] = Math.min(out[i] as number, out[i + 1] as number);
  return out;
}

export function oracleResult(
  vanilla: OpenLoopResult,
  items: readonly number[],
  traces: readonly ItemTrace[],
  manifest: PreparedManifest,
  meanBatch: number | null,
): OpenLoopResult {
  const profile = manifest.profile;
  const batch = Math.min(16, Math.max(1, Math.round(meanBatch ?? 16)));
  const fullMs = atBatch(profile, lowerEnvelope(profile.fullModelMs), batch);
  const depth = new Map(manifest.ramps.map((r) => [r.id, r.computeBefore]));
  const out: OpenLoopResult = {
    ...vanilla,
    latencyMs: [...vanilla.latencyMs],
    predicted: [...vanilla.predicted],
    exitRamp: [...vanilla.exitRamp],
  };
  vanilla.status.forEach((status, i) => {
    if (status !== 200) return;
    const trace = traces[items[i] as number] as ItemTrace;
    const ramp = trace.earliestAgreeingRamp;
    const latency = vanilla.latencyMs[i] as number;
    const skippedShare = ramp < 0 ? 0 : 1 - (depth.get(ramp) ?? 1);
    out.latencyMs[i] = latency - Math.min(fullMs * skippedShare, latency * skippedShare);
    out.predicted[i] = trace.final;
    out.exitRamp[i] = ramp;
  });
  return out;
}
