/**
 * How the page writes numbers: every readout carries its unit, and a missing value (null: no
 * answers in the interval, no guard, no data yet) is a dash rather than a zero, so "nothing
 * happened" never reads as "it was fast". Pure (no DOM): test/dashboard-client.test.ts runs it in Node.
 */

/** What a readout shows for a value the server did not have. */
export const MISSING = '—';

/**
 * `value` to `digits` significant digits, without exponent notation and without trailing zeros
 * after the point ("12.5", "0.042", "1200").
 */
export function significant(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return String(value);
  if (value === 0) return '0';
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  const decimals = Math.max(0, digits - 1 - magnitude);
  // toFixed rounds half away from zero on the decimal string; a 0.9995 may round up to "1.000".
  return Number(value.toFixed(Math.min(decimals, 20))).toString();
}

/** Milliseconds: "0.42 ms", "12.3 ms", "1.25 s" from a second up. */
export function formatMs(ms: number | null): string {
  if (ms === null) return MISSING;
  if (Math.abs(ms) >= 1000) return `${significant(ms / 1000)} s`;
  return `${significant(ms)} ms`;
}

/** Events per second: "12.3/s". */
export function formatRate(perSecond: number | null): string {
  if (perSecond === null) return MISSING;
  return `${significant(perSecond)}/s`;
}

/** A share in 0..1 as a percentage: "12.5 %", "0.42 %". */
export function formatShare(share: number | null): string {
  if (share === null) return MISSING;
  return `${significant(share * 100)} %`;
}

/** An exit threshold: "0.93", or "never" for null (the ramp answers nothing). */
export function formatThreshold(threshold: number | null): string {
  if (threshold === null) return 'never';
  return significant(threshold, 4);
}

/** CPU in cores: "0.42 cores", "1 core". */
export function formatCores(cores: number | null): string {
  if (cores === null) return MISSING;
  const text = significant(cores, 2);
  return `${text} ${text === '1' ? 'core' : 'cores'}`;
}

/** A count of things: "3 requests", "1 request". */
export function formatCount(count: number | null, singular: string, plural = `${singular}s`): string {
  if (count === null) return MISSING;
  const text = significant(count);
  return `${text} ${text === '1' ? singular : plural}`;
}

/** A local time of day: "14:03:07", or "14:03" without seconds (time axes with minute ticks). */
export function formatClock(epochMs: number, withSeconds = true): string {
  const date = new Date(epochMs);
  const two = (n: number) => String(n).padStart(2, '0');
  const minutes = `${two(date.getHours())}:${two(date.getMinutes())}`;
  return withSeconds ? `${minutes}:${two(date.getSeconds())}` : minutes;
}
