/**
 * docs/metrics.md, rendered from METRIC_TABLE so the page never disagrees with what `GET /metrics`
 * serves: `npm run metrics-doc` writes it, and test/metrics.test.ts fails when the committed page
 * differs from this text.
 */
import { join } from 'node:path';
import { packageRoot } from './config/package-root.js';
import { LABEL_DOCS, METRIC_TABLE, type LabelName, type MetricSpec } from './metrics.js';

export function metricsDocFile(): string {
  return join(packageRoot(), 'docs', 'metrics.md');
}

/** Table cells are one line each; a `|` would end the cell. */
function cell(text: string): string {
  return text.replaceAll('|', '\\|');
}

function meaning(spec: MetricSpec): string {
  const parts = [spec.help];
  if (spec.doc) parts.push(spec.doc);
  if (spec.buckets) parts.push(`Buckets: ${spec.buckets.join(', ')}.`);
  return cell(parts.join(' '));
}

export function renderMetricsDoc(): string {
  const specs: readonly MetricSpec[] = Object.values(METRIC_TABLE);
  const usedLabels = new Set<LabelName>(specs.flatMap((s) => s.labels));
  const lines = [
    '# Metrics',
    '',
    '<!-- Generated from METRIC_TABLE in src/metrics.ts by `npm run metrics-doc`; do not edit by hand. -->',
    '',
    'offramp serves Prometheus metrics at `GET /metrics` on the HTTP port. Names, types, labels and',
    'buckets are stable: dashboards and the bench read them. Every label listed for a metric is set',
    "on every series. prom-client's default process metrics (`process_*`, `nodejs_*`) are served",
    'beside these.',
    '',
    '| Metric | Type | Labels | Meaning |',
    '| --- | --- | --- | --- |',
    ...specs.map((s) => `| \`${s.name}\` | ${s.type} | ${s.labels.join(', ')} | ${meaning(s)} |`),
    '',
    '## Labels',
    '',
    '| Label | Values |',
    '| --- | --- |',
    ...(Object.keys(LABEL_DOCS) as LabelName[])
      .filter((l) => usedLabels.has(l))
      .map((l) => `| \`${l}\` | ${cell(LABEL_DOCS[l])} |`),
    '',
  ];
  return lines.join('\n');
}
