/**
 * Exact (Clopper–Pearson) confidence bounds for a binomial proportion: the statistical guard of
 * the guarded tuner, what it adds to Apparate's empirical check (docs/algorithms.md).
 *
 * With k disagreements among n rows, the one-sided upper bound at confidence 1 − δ is the p for
 * which seeing k or fewer disagreements has probability δ: P(X ≤ k | n, p) = δ. Through the
 * identity P(X ≤ k | n, p) = 1 − I_p(k + 1, n − k) that p is the (1 − δ) quantile of
 * Beta(k + 1, n − k). We find it by bisection on the regularized incomplete beta function I_x(a, b),
 * evaluated with Lentz's continued fraction. Bisection is slow-ish (≈ 60 evaluations) but
 * monotone and exact to double precision; the tuner needs it a handful of times per window
 * (`maxAllowedDisagreements` turns the bound into one integer per window size and caches it).
 */

/** ln Γ(x) for x > 0 (Lanczos, g = 7, 9 terms; relative error ≈ 1e-15). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.abs(Math.sin(Math.PI * x))) - logGamma(1 - x);
  const g = 7;
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  const z = x - 1;
  let sum = c[0] as number;
  for (let i = 1; i < g + 2; i++) sum += (c[i] as number) / (z + i);
  const t = z + g + 0.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** Continued fraction for I_x(a, b) (modified Lentz), valid and fast for x < (a + 1) / (a + b + 2). */
function betaContinuedFraction(a: number, b: number, x: number): number {
  const tiny = 1e-300;
  const eps = 1e-16;
  const qab = a + b;
  const qap = a + 1;
  const qam = a - 1;
  let c = 1;
  let d = 1 - (qab * x) / qap;
  if (Math.abs(d) < tiny) d = tiny;
  d = 1 / d;
  let h = d;
  // Converges in O(sqrt(max(a, b))) steps; 100k rows need a few hundred.
  for (let m = 1; m <= 100_000; m++) {
    const m2 = 2 * m;
    let aa = (m * (b - m) * x) / ((qam + m2) * (a + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    h *= d * c;
    aa = (-(a + m) * (qab + m) * x) / ((a + m2) * (qap + m2));
    d = 1 + aa * d;
    if (Math.abs(d) < tiny) d = tiny;
    c = 1 + aa / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < eps) break;
  }
  return h;
}

/** Regularized incomplete beta function I_x(a, b), a, b > 0, x in [0, 1]. */
export function regularizedIncompleteBeta(x: number, a: number, b: number): number {
  if (x <= 0) return 0;
  if (x >= 1) return 1;
  const logFront = logGamma(a + b) - logGamma(a) - logGamma(b) + a * Math.log(x) + b * Math.log1p(-x);
  const front = Math.exp(logFront);
  // Use the continued fraction where it converges quickly, the symmetry I_x(a,b) = 1 − I_{1−x}(b,a) elsewhere.
  if (x < (a + 1) / (a + b + 2)) return (front * betaContinuedFraction(a, b, x)) / a;
  return 1 - (front * betaContinuedFraction(b, a, 1 - x)) / b;
}

/** P(X ≤ k) for X ~ Binomial(n, p). */
export function binomialCdf(k: number, n: number, p: number): number {
  if (k < 0) return 0;
  if (k >= n) return 1;
  if (p <= 0) return 1;
  if (p >= 1) return 0;
  return 1 - regularizedIncompleteBeta(p, k + 1, n - k);
}

/** The x in [0, 1] with I_x(a, b) = target, by bisection (I is increasing in x). */
function inverseRegularizedBeta(target: number, a: number, b: number): number {
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 200 && hi - lo > 1e-16; i++) {
    const mid = (lo + hi) / 2;
    if (regularizedIncompleteBeta(mid, a, b) < target) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

function checkCounts(k: number, n: number, confidence: number): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`n must be a non-negative integer, got ${n}`);
  if (!Number.isInteger(k) || k < 0 || k > n) throw new RangeError(`k must be an integer in [0, n=${n}], got ${k}`);
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must be in (0, 1), got ${confidence}`);
}

/**
 * One-sided upper Clopper–Pearson bound: with probability ≥ `confidence` the true proportion is
 * at most this, having seen k successes in n trials. n = 0 gives 1 (nothing is known).
 */
export function clopperPearsonUpper(k: number, n: number, confidence: number): number {
  checkCounts(k, n, confidence);
  if (k >= n) return 1;
  return inverseRegularizedBeta(confidence, k + 1, n - k);
}

/** One-sided lower Clopper–Pearson bound (0 when k = 0): used to tell a real violation from noise. */
export function clopperPearsonLower(k: number, n: number, confidence: number): number {
  checkCounts(k, n, confidence);
  if (k === 0) return 0;
  return inverseRegularizedBeta(1 - confidence, k, n - k + 1);
}

const allowedCache = new Map<string, number>();

/**
 * The largest disagreement count k whose upper bound over n rows stays within `budget`, or −1
 * when even k = 0 is not enough (too few rows: n < ln δ / ln(1 − budget)). The bound grows with
 * k, so "upper(k, n) ≤ budget" is the same test as "k ≤ maxAllowedDisagreements(n, …)" and a
 * search can compare integers instead of inverting a beta function per candidate.
 */
export function maxAllowedDisagreements(n: number, budget: number, confidence: number): number {
  const key = `${n}|${budget}|${confidence}`;
  const cached = allowedCache.get(key);
  if (cached !== undefined) return cached;
  let lo = -1; // largest k known to pass (−1: none)
  let hi = n; // smallest k known to fail, or n
  if (n === 0 || clopperPearsonUpper(0, n, confidence) > budget) {
    hi = 0;
  } else {
    lo = 0;
    if (clopperPearsonUpper(n, n, confidence) <= budget) lo = n;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (clopperPearsonUpper(mid, n, confidence) <= budget) lo = mid;
      else hi = mid;
    }
  }
  if (allowedCache.size > 4096) allowedCache.clear();
  allowedCache.set(key, lo);
  return lo;
}

/**
 * The largest true disagreement rate at which a window of `windowRows` rows still keeps within
 * `budget` with probability ≥ `confidence`: max p with P(Binomial(windowRows, p) > budget ·
 * windowRows) ≤ 1 − confidence. The budget is judged per window, and even a rate below the
 * budget breaks some windows by chance (at 1 % over 1,000 rows, a true rate of 0.8 % breaks
 * one window in four); this is the rate that breaks at most one in 1/(1 − confidence).
 */
export function windowSafeRate(windowRows: number, budget: number, confidence: number): number {
  if (!Number.isInteger(windowRows) || windowRows < 1)
    throw new RangeError(`windowRows must be a positive integer, got ${windowRows}`);
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must be in (0, 1), got ${confidence}`);
  const allowed = Math.floor(budget * windowRows + 1e-9);
  let lo = 0;
  let hi = Math.min(1, budget);
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    if (1 - binomialCdf(allowed, windowRows, mid) <= 1 - confidence) lo = mid;
    else hi = mid;
  }
  return lo;
}
