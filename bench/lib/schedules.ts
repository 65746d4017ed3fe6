/**
 * Arrival schedules for a run: when each request is sent and which test item it carries. Built once
 * per (pattern, load) from the same seed, so every policy gets exactly the same requests.
 */
import { seededRandom } from '../../src/model/numeric.js';
import { arrivals, poissonArrivals, type Pattern } from '../load/arrivals.js';
import { itemsFor, type Dataset } from './dataset.js';

export interface Schedule {
  offsetsMs: number[];
  /** The test item (= line of the bodies file) each request carries. */
  items: number[];
}

/** A seed per (pattern, load) derived from the bench seed: different processes, same every run. */
function phaseSeed(seed: number, pattern: Pattern, loadFraction: number): number {
  return seed * 1_000_003 + Math.round(loadFraction * 1000) + (pattern === 'bursty' ? 500_000 : 0);
}

/** A measured phase: its requests take items from the start of the shuffled order. */
export function phaseSchedule(
  dataset: Dataset,
  seed: number,
  pattern: Pattern,
  loadFraction: number,
  rateRps: number,
  seconds: number,
): Schedule {
  const offsetsMs = arrivals(pattern, rateRps, seconds, seededRandom(phaseSeed(seed, pattern, loadFraction)));
  return { offsetsMs, items: itemsFor(dataset, 0, offsetsMs.length) };
}

/** The warm-up: `requests` Poisson arrivals at `rateRps`, items from the middle of the order. */
export function warmupSchedule(dataset: Dataset, seed: number, requests: number, rateRps: number): Schedule {
  // Long enough to hold `requests` arrivals with near certainty, then cut to exactly that many.
  const offsetsMs = poissonArrivals(rateRps, (requests / rateRps) * 1.5 + 1, seededRandom(seed + 17)).slice(
    0,
    requests,
  );
  return { offsetsMs, items: itemsFor(dataset, Math.floor(dataset.items / 2), offsetsMs.length) };
}

/**
 * A capacity probe: Poisson at `rateRps` for `seconds`, items from a quarter into the order. The
 * seed depends on the rate only, so two policies probed at the same rate get the same requests.
 */
export function probeSchedule(dataset: Dataset, seed: number, rateRps: number, seconds: number): Schedule {
  const offsetsMs = poissonArrivals(rateRps, seconds, seededRandom(seed * 7919 + Math.round(rateRps)));
  return { offsetsMs, items: itemsFor(dataset, Math.floor(dataset.items / 4), offsetsMs.length) };
}
