/**
 * The agreement rule of an agreement-based cascade (ABC; Kolawole et al., arXiv 2407.02348): how
 * a tier of member models reads one row. Pure, shared by the executor (deciding a tier's exits
 * live) and the bench (the cascade's oracle), as tuner/exit-policy.ts is for ramps.
 *
 * Each member votes its argmax. The tier's answer is the plurality class — a tie goes to the tied
 * class with the higher mean probability, so the answer does not depend on member order — with
 * the members' mean probabilities. Its score, compared with the tier's threshold θ like a ramp's:
 *
 *   vote   the plurality's share of the votes (ABC's rule: θ = 1 all agree, 2/3 relaxed)
 *   score  the members' mean probability of the plurality class
 *
 * Both lie in (0, 1], so a tuned θ is searched like a confidence threshold.
 */
/** The rules a tier may answer by, in the order the SLO file lists them. */
export const CASCADE_RULES = ['vote', 'score'] as const;
export type CascadeRule = (typeof CASCADE_RULES)[number];

export interface TierReading {
  /** The plurality class. */
  argmax: number;
  /** Each member's argmax, in member order. */
  votes: number[];
  /** The plurality's share of the votes. */
  agreement: number;
  /** The members' mean probability of the plurality class (what responses call confidence). */
  confidence: number;
  /** The rule's score: `agreement` (vote) or `confidence` (score). */
  score: number;
  /** The members' mean probabilities. */
  probs: Float32Array;
}

/**
 * Reads row `row` of every member's [rows × classes] probabilities (memberProbs[m], in member
 * order) under `rule`.
 */
export function readTier(
  rule: CascadeRule,
  memberProbs: readonly ArrayLike<number>[],
  row: number,
  classes: number,
): TierReading {
  const k = memberProbs.length;
  const base = row * classes;
  const probs = new Float32Array(classes);
  const counts = new Int32Array(classes);
  const votes: number[] = [];
  for (const p of memberProbs) {
    let best = 0;
    for (let c = 0; c < classes; c++) {
      const v = p[base + c] as number;
      probs[c] = (probs[c] as number) + v / k;
      if (v > (p[base + best] as number)) best = c;
    }
    votes.push(best);
    counts[best] = (counts[best] as number) + 1;
  }
  let argmax = 0;
  for (let c = 1; c < classes; c++) {
    const more = (counts[c] as number) > (counts[argmax] as number);
    const tiedHigher = counts[c] === counts[argmax] && (probs[c] as number) > (probs[argmax] as number);
    if (more || tiedHigher) argmax = c;
  }
  const agreement = (counts[argmax] as number) / k;
  const confidence = probs[argmax] as number;
  return { argmax, votes, agreement, confidence, score: rule === 'vote' ? agreement : confidence, probs };
}
