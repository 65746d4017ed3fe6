/**
 * What makes a bench run broken, as opposed to slow. Nothing here looks at a latency or a rate:
 * on a shared 2-core machine timings vary, and the bench must not fail for that. Overload
 * answers (429 queue full, 504 timed out in queue) and client timeouts are counted in the
 * results, not failed on.
 */
import { stat } from 'node:fs/promises';
import type { BenchResults } from './results.js';

/**
 * Overload, documented in docs/errors.md: OFFRAMP_QUEUE_FULL (429), OFFRAMP_TIMED_OUT_IN_QUEUE
 * (504); "0" is a client timeout. They are misses in the figures, never failures of the bench.
 */
const OVERLOAD_STATUSES = new Set(['0', '429', '504']);
/** Vanilla serves the model `record` ran: more disagreement than this means broken inputs or outputs. */
const VANILLA_MAX_DISAGREEMENT = 0.005;

export function resultProblems(results: BenchResults): string[] {
  const problems: string[] = [];
  for (const { label } of results.policies) {
    const rows = results.runs.filter((r) => r.label === label);
    if (rows.length === 0 || rows.every((r) => r.ok === 0)) problems.push(`${label}: no answered requests`);
  }
  const unexpected = (where: string, byStatus: Record<string, number>): void => {
    for (const [status, n] of Object.entries(byStatus)) {
      if (!OVERLOAD_STATUSES.has(status)) problems.push(`${where}: ${n} answers with HTTP ${status}`);
    }
  };
  for (const s of results.served) {
    for (const p of s.capacity.probes) {
      unexpected(`${s.label} round ${s.round} capacity probe at ${p.rate_rps.toFixed(0)}/s`, p.errors_by_status);
    }
  }
  for (const r of results.runs) {
    const where = `${r.label} round ${r.round} ${r.pattern} ${Math.round(r.load_fraction * 100)} %`;
    unexpected(where, r.errors.by_status);
    const refused = r.errors.by_code['CLIENT_CONNECTION_ERROR'] ?? 0;
    if (refused > 0) problems.push(`${where}: ${refused} requests failed to connect`);
    if (!r.computed && (r.answers_without_tier ?? 0) > 0)
      problems.push(`${where}: ${r.answers_without_tier} answers without the cascade's tier parameter`);
    if (r.policy === 'vanilla' && r.ok > 0 && !(r.disagreement <= VANILLA_MAX_DISAGREEMENT)) {
      problems.push(
        `${where}: vanilla disagrees with the recorded full model on ${(r.disagreement * 100).toFixed(2)} % of test items`,
      );
    }
  }
  return problems;
}

export async function missingFiles(paths: string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const p of paths) {
    const ok = await stat(p).then(
      (s) => s.size > 0,
      () => false,
    );
    if (!ok) missing.push(`${p} was not written`);
  }
  return missing;
}
