/**
 * A small, fast, seedable PRNG (mulberry32), so every draw can be reproduced: verification
 * inputs, head-training splits, replay resampling and probe draws, bench schedules, and the
 * executor's probe draws (seeded at random in serving, fixed by tests). Here, in the pure layer,
 * because replay draws probes as the executor does; src/model/numeric.ts re-exports it.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
