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
 *
 * The cascade oracle (`--cascade`, issue 14) is computed the same way from the same vanilla runs:
 * a request stops at the ABC tier when its members' plurality (cascade-trace.ts) equals the full
 * model's answer and pays only the tier, else pays the tier and the full model
 * (`cascadeOracleResult`).
 */
import type { PreparedManifest } from '../../src/model/manifest.js';
import { atBatch } from '../../tuner/latency-model.js';
import type { OpenLoopResult } from '../load/load-types.js';
import type { CascadeItemTrace } from './cascade-trace.js';
import type { ItemTrace } from './trace.js';

/** Running minimum from the right: series[i] ≤ series[j] for i < j. */
function lowerEnvelope(series: readonly number[]): number[] {
  const out = [...series];
  for (let i = out.length - 2; i >= 0; i--) out[i] = Math.min(out[i] as number, out[i + 1] as number);
  return out;
}

/** How one answered request ends under an oracle. */
interface OracleOutcome {
  /** The compute it pays, as a share of the full model's (1 = the full model; above 1 = more). */
  costShare: number;
  /** The exit it answers from, numbered as the served policy numbers them (-1 = the full model). */
  exitRamp: number;
  /** The cascade tier that answers it (T = the served model); null without a cascade. */
  tier: number | null;
}

/**
 * Vanilla's run with every answered request's compute replaced by the oracle's: vanilla's latency
 * minus the compute skipped (or plus the compute added), L_full(b) · (1 − costShare), a skip capped
 * at that share of the request's own latency; the answer is always the full model's. Also the
 * mean cost share over answered requests (the oracle's compute per answer against vanilla's).
 */
function fromVanilla(
  vanilla: OpenLoopResult,
  items: readonly number[],
  traces: readonly ItemTrace[],
  manifest: PreparedManifest,
  meanBatch: number | null,
  outcome: (item: number) => OracleOutcome,
): { result: OpenLoopResult; computeShare: number | null } {
  const profile = manifest.profile;
  const batch = Math.min(16, Math.max(1, Math.round(meanBatch ?? 16)));
  const fullMs = atBatch(profile, lowerEnvelope(profile.fullModelMs), batch);
  const out: OpenLoopResult = {
    ...vanilla,
    latencyMs: [...vanilla.latencyMs],
    predicted: [...vanilla.predicted],
    exitRamp: [...vanilla.exitRamp],
    tier: [...vanilla.tier],
  };
  let shares = 0;
  let answered = 0;
  vanilla.status.forEach((status, i) => {
    if (status !== 200) return;
    const item = items[i] as number;
    const o = outcome(item);
    const latency = vanilla.latencyMs[i] as number;
    const skipped = 1 - o.costShare;
    out.latencyMs[i] = latency - (skipped >= 0 ? Math.min(fullMs * skipped, latency * skipped) : fullMs * skipped);
    out.predicted[i] = (traces[item] as ItemTrace).final;
    out.exitRamp[i] = o.exitRamp;
    out.tier[i] = o.tier;
    shares += o.costShare;
    answered++;
  });
  return { result: out, computeShare: answered > 0 ? shares / answered : null };
}

/** The ramp oracle: every request exits at the earliest ramp agreeing with the full model. */
export function oracleResult(
  vanilla: OpenLoopResult,
  items: readonly number[],
  traces: readonly ItemTrace[],
  manifest: PreparedManifest,
  meanBatch: number | null,
): { result: OpenLoopResult; computeShare: number | null } {
  const depth = new Map(manifest.ramps.map((r) => [r.id, r.computeBefore]));
  return fromVanilla(vanilla, items, traces, manifest, meanBatch, (item) => {
    const ramp = (traces[item] as ItemTrace).earliestAgreeingRamp;
    return { costShare: ramp < 0 ? 1 : (depth.get(ramp) ?? 1), exitRamp: ramp, tier: null };
  });
}

/**
 * The cascade oracle (one tier in front of the full model): a request stops at the tier when the
 * members' plurality equals the full model's answer, paying the tier's cost; otherwise it pays the
 * tier and the full model. `tierShare` is the tier's cost as a share of the full model's at batch
 * 1 (the server's measured tier cost over the profile's full-model latency), applied at every
 * batch size as `computeBefore` is for a ramp — members batch better than the backbone, so at
 * larger batches this overstates the tier.
 */
export function cascadeOracleResult(
  vanilla: OpenLoopResult,
  items: readonly number[],
  traces: readonly ItemTrace[],
  tier: readonly CascadeItemTrace[],
  tierShare: number,
  manifest: PreparedManifest,
  meanBatch: number | null,
): { result: OpenLoopResult; computeShare: number | null } {
  return fromVanilla(vanilla, items, traces, manifest, meanBatch, (item) =>
    tier[item]?.plurality === traces[item]?.final
      ? { costShare: tierShare, exitRamp: 0, tier: 0 }
      : { costShare: 1 + tierShare, exitRamp: -1, tier: 1 },
  );
}
