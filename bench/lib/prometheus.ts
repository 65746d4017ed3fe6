/**
 * Reads the Prometheus text the server exposes at GET /metrics, keeping the offramp_* samples
 * (the exit state and event-loop lag the bench reports; process_* and nodejs_* are left out),
 * and the server process's CPU time.
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string, prefix = 'offramp_'): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || !line.startsWith(prefix)) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1] as string] = l[2] as string;
    out.push({ name: m[1] as string, labels, value: Number(m[3]) });
  }
  return out;
}

/** The value of the first sample with this name whose labels include `labels`, or null. */
export function sampleValue(samples: Sample[], name: string, labels: Record<string, string> = {}): number | null {
  const s = samples.find((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  return s ? s.value : null;
}

/** Mean rows per executed batch between two scrapes (from the offramp_batch_size histogram). */
export function meanBatchSize(before: Sample[], after: Sample[]): number | null {
  const delta = (name: string): number => (sampleValue(after, name) ?? 0) - (sampleValue(before, name) ?? 0);
  const count = delta('offramp_batch_size_count');
  return count > 0 ? delta('offramp_batch_size_sum') / count : null;
}

/**
 * process_cpu_seconds_total (prom-client's default metrics, from process.cpuUsage(): user +
 * system time of the whole process, every worker thread included), or null when not exposed.
 */
export function cpuSeconds(text: string): number | null {
  return sampleValue(parseMetrics(text, 'process_cpu_seconds_total'), 'process_cpu_seconds_total');
}
