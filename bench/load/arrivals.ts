/**
 * Arrival processes for open-loop load, as lists of send times (ms from the start). Pure and
 * seeded: the parent computes a schedule once per (pattern, rate) and every policy gets the same
 * one, so their answers can be compared request by request.
 */

export type Pattern = 'poisson' | 'bursty';

/** An exponential gap with the given mean, from a uniform [0, 1) source. */
function exponential(random: () => number, mean: number): number {
  return -Math.log(1 - random()) * mean;
}

/** Poisson arrivals: independent users, exponential gaps at `rateRps` on average. */
export function poissonArrivals(rateRps: number, durationS: number, random: () => number): number[] {
  const out: number[] = [];
  const meanGapMs = 1000 / rateRps;
  for (let t = exponential(random, meanGapMs); t < durationS * 1000; t += exponential(random, meanGapMs)) out.push(t);
  return out;
}

/**
 * How bursty load alternates: a two-state Markov-modulated Poisson process. Equal mean dwell times
 * keep the long-run mean at the middle of the two rates, so `high + low = 2` (factors of the mean).
 */
export interface BurstShape {
  /** Rate while bursting, as a factor of the mean rate. */
  highFactor: number;
  /** Rate between bursts, as a factor of the mean rate (2 − highFactor). */
  lowFactor: number;
  /** Mean time spent in each state before switching, in seconds (exponential). */
  meanDwellS: number;
}

/** 1.8× the mean for about a second, then 0.2× for about a second: at 60 % load, bursts exceed capacity. */
export const DEFAULT_BURST: BurstShape = { highFactor: 1.8, lowFactor: 0.2, meanDwellS: 1 };

export function burstyArrivals(
  meanRps: number,
  durationS: number,
  random: () => number,
  shape: BurstShape = DEFAULT_BURST,
): number[] {
  const out: number[] = [];
  const endMs = durationS * 1000;
  let high = true;
  let t = 0;
  let stateEnd = exponential(random, shape.meanDwellS * 1000);
  while (t < endMs) {
    const rate = meanRps * (high ? shape.highFactor : shape.lowFactor);
    const next = t + exponential(random, 1000 / rate);
    // Memoryless: an arrival drawn past the state's end is discarded and redrawn in the new state.
    if (next >= stateEnd) {
      t = stateEnd;
      high = !high;
      stateEnd = t + exponential(random, shape.meanDwellS * 1000);
      continue;
    }
    t = next;
    if (t < endMs) out.push(t);
  }
  return out;
}

export function arrivals(pattern: Pattern, rateRps: number, durationS: number, random: () => number): number[] {
  return pattern === 'poisson'
    ? poissonArrivals(rateRps, durationS, random)
    : burstyArrivals(rateRps, durationS, random);
}
