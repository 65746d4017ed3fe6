/**
 * What makes a bench run broken, as opposed to slow. Nothing here looks at a latency or a rate:
 * on a shared 2-core machine timings vary, and the bench must not fail for that. Overload
 * answers (429 queue full, 504 timed out in queue) and client timeouts are counted in the
 * results, not failed on.
 */
import { stat } from 'node:fs/promises';
import { SERVED_POLICIES, policyLabel } from './policies.js';
import type { BenchResults } from './results.js';

/** Overload, documented in docs/errors.md: OFFRAMP_QUEUE_FULL (429), OFFRAMP_TIMED_OUT_IN_QUEUE (504). */
const OVERLOAD_STATUSES = new Set(['429', '504']);
/** Vanilla serves the model `record` ran: more disagreement than this means broken inputs or outputs. */
const VANILLA_MAX_DISAGREEMENT = 0.005;

export function resultProblems(results: BenchResults): string[] {
  const problems: string[] = [];
  const labels = [...SERVED_POLICIES.map(policyLabel), 'oracle'];
  for (const label of labels) {
    const rows = results.runs.filter((r) => r.label === label);
    if (rows.length === 0 || rows.every((r) => r.ok === 0)) problems.push(`${label}: no answered requests`);
  }
  for (const r of results.runs) {
    const where = `${r.label} ${r.pattern} ${Math.round(r.load_fraction * 100)} %`;
    for (const [status, n] of Object.entries(r.errors.by_status)) {
      if (status === '0' || OVERLOAD_STATUSES.has(status)) continue;
      problems.push(`${where}: ${n} answers with HTTP ${status}`);
    }
    const refused = r.errors.by_code['CLIENT_CONNECTION_ERROR'] ?? 0;
    if (refused > 0) problems.push(`${where}: ${refused} requests failed to connect`);
    if (r.policy === 'vanilla' && r.ok > 0 && !(r.disagreement <= VANILLA_MAX_DISAGREEMENT)) {
      problems.push(
        `${where}: vanilla disagrees with the recorded full model on ${(r.disagreement * 100).toFixed(2)} % of images`,
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
