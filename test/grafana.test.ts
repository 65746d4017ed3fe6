/**
 * docs/grafana/offramp.json against the metrics it reads. The dashboard is written by hand (or
 * exported from Grafana), so nothing else keeps its PromQL in step with src/metrics.ts: every
 * metric a query reads must be one offramp exports (METRIC_TABLE, or a prom-client process metric
 * of a real `createMetrics()` registry), every label a query selects, groups or matches on must be
 * on that metric, every metric of the table must be on the dashboard, and Prometheus' own parser
 * (promtool, from Debian's `prometheus` package, which .ci/run installs) must accept every query.
 * A missing promtool fails the test rather than skipping it.
 */

import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { WORKER_FAILURE_CAUSES } from '../src/engine/backend.js';
import { OUTCOMES } from '../src/engine/model-runner.js';
import {
  ADMIN_AUTH_FAILURES,
  EVENT_LOOP_STATS,
  METRIC_TABLE,
  TIER_DECISIONS,
  createMetrics,
  type MetricSpec,
} from '../src/metrics.js';

const DASHBOARD_URL = new URL('../docs/grafana/offramp.json', import.meta.url);

/** Where every query goes: the datasource variable, so that the dashboard imports into any Grafana. */
const DATASOURCE = { type: 'prometheus', uid: '${DS_PROMETHEUS}' };

/** Labels Prometheus attaches to every scraped series (the scrape target's), not offramp. */
const TARGET_LABELS = ['job', 'instance'];

/** Grafana's own interval variables, replaced by a literal duration before promtool reads a query. */
const GRAFANA_INTERVALS: Record<string, string> = { __rate_interval: '1m', __interval: '1m', __range: '1h' };

/** Labels whose values offramp draws from a closed list: a query matching another value reads nothing. */
const CLOSED_VOCABULARIES: Record<string, readonly string[]> = {
  outcome: OUTCOMES,
  stat: EVENT_LOOP_STATS,
  reason: ADMIN_AUTH_FAILURES,
  cause: WORKER_FAILURE_CAUSES,
  decision: TIER_DECISIONS,
};

const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
]);
const GROUPING = new Set(['by', 'without']);
const MATCHING = new Set(['on', 'ignoring', 'group_left', 'group_right']);
const SET_OPERATORS = new Set(['and', 'or', 'unless', 'bool', 'offset']);

interface DatasourceRef {
  type: string;
  uid: string;
}
interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: DatasourceRef;
}
interface Panel {
  id: number;
  type: string;
  title?: string;
  datasource?: DatasourceRef;
  targets?: Target[];
}
interface Annotation {
  name: string;
  builtIn?: number;
  datasource?: DatasourceRef;
  expr?: string;
  titleFormat?: string;
  textFormat?: string;
}
interface Variable {
  name: string;
  type: string;
  datasource?: DatasourceRef;
  query?: string | { query: string };
}
interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  annotations: { list: Annotation[] };
  templating: { list: Variable[] };
}

/** One PromQL expression of the dashboard, with where it is and the label templates shown with it. */
interface Query {
  where: string;
  expr: string;
  templates: string[];
}

async function loadDashboard(): Promise<Dashboard> {
  return JSON.parse(await readFile(DASHBOARD_URL, 'utf8')) as Dashboard;
}

/**
 * Every query the dashboard sends Prometheus: panel targets, annotations, and the template
 * variables' `label_values(selector, label)`, which Grafana answers like `count by (label) (selector)`.
 */
function queriesOf(dashboard: Dashboard): Query[] {
  const queries: Query[] = [];
  for (const panel of dashboard.panels)
    for (const target of panel.targets ?? [])
      queries.push({
        where: `panel "${panel.title}" ${target.refId}`,
        expr: target.expr,
        templates: target.legendFormat ? [target.legendFormat] : [],
      });
  for (const a of dashboard.annotations.list) {
    if (a.builtIn) continue;
    queries.push({
      where: `annotation "${a.name}"`,
      expr: a.expr ?? '',
      templates: [a.titleFormat ?? '', a.textFormat ?? ''],
    });
  }
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue;
    const text = typeof v.query === 'string' ? v.query : (v.query?.query ?? '');
    const m = /^label_values\((.+),\s*([a-zA-Z_]\w*)\)$/.exec(text);
    queries.push({ where: `variable $${v.name}`, expr: m ? `count by (${m[2]}) (${m[1]})` : text, templates: [] });
  }
  return queries;
}

/** A query with each `$var` / `${var}` replaced by a literal; throws on a variable the dashboard does not define. */
function withLiterals(expr: string, variables: ReadonlySet<string>): string {
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (_whole, braced: string | undefined, bare: string | undefined) => {
    const name = (braced ?? bare)!;
    const interval = GRAFANA_INTERVALS[name];
    if (interval !== undefined) return interval;
    if (!variables.has(name)) throw new Error(`$${name} is not a variable of the dashboard`);
    return `v-${name}`;
  });
}

/** The label names each exported series carries, by series name (a histogram's _bucket, _sum and _count). */
async function exportedSeries(): Promise<Map<string, ReadonlySet<string>>> {
  const series = new Map<string, ReadonlySet<string>>();
  const add = (name: string, type: string, labels: readonly string[]): void => {
    if (type === 'histogram') {
      series.set(`${name}_bucket`, new Set([...labels, 'le']));
      series.set(`${name}_sum`, new Set(labels));
      series.set(`${name}_count`, new Set(labels));
    } else series.set(name, new Set(labels));
  };
  for (const spec of Object.values(METRIC_TABLE) as MetricSpec[]) add(spec.name, spec.type, spec.labels);
  // prom-client's process metrics are not in the table: take their names and labels from a real registry.
  // (Its typings declare `type` a numeric enum; getMetricsAsJSON gives the type's name, e.g. 'histogram'.)
  const metrics = createMetrics();
  try {
    for (const m of await metrics.registry.getMetricsAsJSON()) {
      if (m.name.startsWith('offramp_')) continue;
      add(m.name, String(m.type), [...new Set(m.values.flatMap((v) => Object.keys(v.labels)))]);
    }
  } finally {
    metrics.close();
  }
  return series;
}

type Token = { kind: 'name' | 'string' | 'range' | 'number' | 'punct'; text: string };

function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  const pattern =
    /\s+|("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(\[[^\]]*\])|([a-zA-Z_:][\w:]*)|(\d+(?:\.\d+)?(?:e[+-]?\d+)?)|(=~|!~|!=|==|>=|<=|[(){},=<>+\-*/%^])/gy;
  for (let at = 0; at < expr.length; at = pattern.lastIndex) {
    pattern.lastIndex = at;
    const m = pattern.exec(expr);
    if (!m) throw new Error(`cannot read PromQL at "${expr.slice(at)}"`);
    if (m[1]) tokens.push({ kind: 'string', text: m[1].slice(1, -1) });
    else if (m[2]) tokens.push({ kind: 'range', text: m[2] });
    else if (m[3]) tokens.push({ kind: 'name', text: m[3] });
    else if (m[4]) tokens.push({ kind: 'number', text: m[4] });
    else if (m[5]) tokens.push({ kind: 'punct', text: m[5] });
  }
  return tokens;
}

interface Selector {
  metric: string;
  matchers: { label: string; op: string; value: string }[];
}

/** A parenthesised group of the expression: the selectors in it (nested ones included), and its parts in order. */
interface Group {
  selectors: Selector[];
  items: (Token | Group)[];
}

const isGroup = (item: Token | Group | undefined): item is Group => item !== undefined && 'items' in item;

/** Splits the tokens into nested parenthesised groups, reading each selector (`metric{matchers}`) whole. */
function parseGroups(tokens: Token[]): Group {
  let at = 0;
  const parse = (): Group => {
    const group: Group = { selectors: [], items: [] };
    while (at < tokens.length) {
      const t = tokens[at++]!;
      if (t.kind === 'punct' && t.text === ')') return group;
      if (t.kind === 'punct' && t.text === '(') {
        const inner = parse();
        group.selectors.push(...inner.selectors);
        group.items.push(inner);
        continue;
      }
      const next = tokens[at];
      if ((GROUPING.has(t.text) || MATCHING.has(t.text)) && next?.text === '(') {
        // A label list, not an expression: its names are labels, not metrics.
        const list: Group = { selectors: [], items: [] };
        for (at++; at < tokens.length && tokens[at]!.text !== ')'; at++)
          if (tokens[at]!.kind === 'name') list.items.push(tokens[at]!);
        at++; // the closing parenthesis
        group.items.push(t, list);
        continue;
      }
      const isCall = next?.kind === 'punct' && next.text === '(';
      const isKeyword = AGGREGATIONS.has(t.text) || GROUPING.has(t.text) || MATCHING.has(t.text);
      if (t.kind === 'name' && !isCall && !isKeyword && !SET_OPERATORS.has(t.text)) {
        const selector: Selector = { metric: t.text, matchers: [] };
        if (next?.kind === 'punct' && next.text === '{') {
          at++;
          while (tokens[at] && tokens[at]!.text !== '}') {
            const [label, op, value] = [tokens[at], tokens[at + 1], tokens[at + 2]];
            if (label?.kind !== 'name' || op?.kind !== 'punct' || value?.kind !== 'string')
              throw new Error(`cannot read the matchers of ${t.text}`);
            selector.matchers.push({ label: label.text, op: op.text, value: value.text });
            at += tokens[at + 3]?.text === ',' ? 4 : 3;
          }
          at++; // the closing brace
        }
        group.selectors.push(selector);
        group.items.push({ kind: 'name', text: t.text });
        continue;
      }
      if (t.kind === 'punct' && t.text === '{') throw new Error('a selector without a metric name');
      group.items.push(t);
    }
    return group;
  };
  return parse();
}

/** Label lists with the selectors they must be on: `agg by (…) (arg)`, `agg (arg) by (…)`, `on (…)` and the like. */
function labelClauses(group: Group): { labels: string[]; selectors: Selector[]; clause: string }[] {
  const clauses: { labels: string[]; selectors: Selector[]; clause: string }[] = [];
  const labelsOf = (g: Group): string[] =>
    g.items.filter((i): i is Token => !isGroup(i) && i.kind === 'name').map((i) => i.text);
  const items = group.items;
  items.forEach((item, i) => {
    if (isGroup(item)) {
      clauses.push(...labelClauses(item));
      return;
    }
    const list = items[i + 1];
    if (!isGroup(list)) return;
    if (GROUPING.has(item.text)) {
      // The aggregation's argument follows the label list, or precedes the keyword.
      const before = items[i - 1];
      const argument = isGroup(items[i + 2]) ? (items[i + 2] as Group) : isGroup(before) ? before : undefined;
      if (!argument) throw new Error(`no argument found for ${item.text} (…)`);
      clauses.push({ labels: labelsOf(list), selectors: argument.selectors, clause: item.text });
    } else if (MATCHING.has(item.text)) {
      // Vector matching reads labels on both sides of the operation: every selector at this level must have them.
      clauses.push({ labels: labelsOf(list), selectors: group.selectors, clause: item.text });
    }
  });
  return clauses;
}

/** Problems of one query, against the exported series; the metrics it reads are added to `read`. */
function checkQuery(query: Query, expr: string, series: Map<string, ReadonlySet<string>>, read: Set<string>): string[] {
  const problems: string[] = [];
  let root: Group;
  try {
    root = parseGroups(tokenize(expr));
  } catch (error) {
    return [`${query.where}: ${(error as Error).message}`]; // promtool says more (the test below)
  }
  const labelsOf = (metric: string): ReadonlySet<string> => new Set([...(series.get(metric) ?? []), ...TARGET_LABELS]);
  if (root.selectors.length === 0) problems.push(`${query.where}: reads no metric`);
  for (const s of root.selectors) {
    read.add(s.metric);
    if (!series.has(s.metric)) {
      problems.push(`${query.where}: ${s.metric} is not a metric offramp exports`);
      continue;
    }
    for (const m of s.matchers) {
      if (!labelsOf(s.metric).has(m.label)) problems.push(`${query.where}: ${s.metric} has no label ${m.label}`);
      const vocabulary = CLOSED_VOCABULARIES[m.label];
      if (vocabulary && (m.op === '=' || m.op === '!=') && !vocabulary.includes(m.value))
        problems.push(`${query.where}: ${m.label}="${m.value}" is not one of ${vocabulary.join(', ')}`);
    }
  }
  for (const c of labelClauses(root))
    for (const s of c.selectors)
      for (const label of c.labels)
        if (series.has(s.metric) && !labelsOf(s.metric).has(label))
          problems.push(`${query.where}: ${c.clause} (${label}) but ${s.metric} has no label ${label}`);
  // A legend or annotation title naming a label no series of the query has would print nothing.
  const available = new Set(root.selectors.flatMap((s) => [...labelsOf(s.metric)]));
  for (const template of query.templates)
    for (const [, label] of template.matchAll(/\{\{\s*(\w+)\s*\}\}/g))
      if (!available.has(label!)) problems.push(`${query.where}: {{${label}}} is a label of none of its metrics`);
  return problems;
}

describe('Grafana dashboard (docs/grafana/offramp.json)', () => {
  it('parses, and every panel, annotation and variable queries the datasource variable', async () => {
    const dashboard = await loadDashboard();
    expect(dashboard.uid).toBe('offramp');
    expect(typeof dashboard.schemaVersion).toBe('number');
    const datasourceVariable = dashboard.templating.list.find((v) => v.name === 'DS_PROMETHEUS');
    expect(datasourceVariable).toMatchObject({ type: 'datasource', query: 'prometheus' });

    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const panel of dashboard.panels) {
      const where = `panel ${panel.id} "${panel.title}"`;
      expect(panel.title?.trim(), where).toBeTruthy();
      if (panel.type === 'row') continue; // a row only heads the panels below it: it has no query
      expect(panel.datasource, where).toEqual(DATASOURCE);
      expect(panel.targets?.length, where).toBeGreaterThan(0);
      const refIds = panel.targets!.map((t) => t.refId);
      expect(new Set(refIds).size, where).toBe(refIds.length);
      for (const target of panel.targets!) {
        expect(target.expr.trim(), `${where} ${target.refId}`).toBeTruthy();
        if (target.datasource) expect(target.datasource, `${where} ${target.refId}`).toEqual(DATASOURCE);
      }
    }
    for (const a of dashboard.annotations.list.filter((x) => !x.builtIn))
      expect(a.datasource, `annotation "${a.name}"`).toEqual(DATASOURCE);
    for (const v of dashboard.templating.list.filter((x) => x.type === 'query'))
      expect(v.datasource, `variable $${v.name}`).toEqual(DATASOURCE);
  });

  it('reads only metrics offramp exports, with their labels and values, and shows every metric of the table', async () => {
    const dashboard = await loadDashboard();
    const variables = new Set(dashboard.templating.list.map((v) => v.name));
    const series = await exportedSeries();
    const read = new Set<string>();
    const problems = queriesOf(dashboard).flatMap((q) => checkQuery(q, withLiterals(q.expr, variables), series, read));
    expect(problems).toEqual([]);

    const readBase = new Set([...read].map((name) => name.replace(/_(bucket|sum|count)$/, '')));
    const notShown = (Object.values(METRIC_TABLE) as MetricSpec[])
      .map((s) => s.name)
      .filter((name) => !read.has(name) && !readBase.has(name));
    expect(notShown, 'metrics of METRIC_TABLE no panel or annotation reads').toEqual([]);
  });

  it('catches a query that drifted from the table (the check above is not vacuous)', async () => {
    const series = await exportedSeries();
    const drifted = (expr: string): string[] =>
      checkQuery({ where: 'q', expr, templates: [] }, expr, series, new Set());
    expect(drifted('rate(offramp_requests_sum[1m])')).toEqual([
      'q: offramp_requests_sum is not a metric offramp exports',
    ]);
    expect(drifted('offramp_ramp_threshold{exit="0"}')).toEqual(['q: offramp_ramp_threshold has no label exit']);
    expect(drifted('sum by (le) (rate(offramp_queue_wait_seconds_sum[1m]))')).toEqual([
      'q: by (le) but offramp_queue_wait_seconds_sum has no label le',
    ]);
    expect(drifted('offramp_requests_total{outcome="error"}')).toHaveLength(1);
    expect(checkQuery({ where: 'q', expr: 'up', templates: ['{{ramp}}'] }, 'up', series, new Set())).toEqual([
      'q: up is not a metric offramp exports',
      'q: {{ramp}} is a label of none of its metrics',
    ]);
  });

  it('promtool parses every query (as a recording rule), and rejects a broken one', async () => {
    const dashboard = await loadDashboard();
    const variables = new Set(dashboard.templating.list.map((v) => v.name));
    const queries = queriesOf(dashboard);
    const dir = await mkdtemp(join(tmpdir(), 'offramp-grafana-'));
    try {
      // JSON is YAML, so the rules file needs no YAML quoting of the expressions.
      const rulesFile = async (exprs: string[]): Promise<string> => {
        const file = join(dir, `rules-${exprs.length}.yml`);
        const rules = exprs.map((expr, i) => ({ record: `offramp_dashboard:query_${i}`, expr }));
        await writeFile(file, JSON.stringify({ groups: [{ name: 'offramp-dashboard', rules }] }));
        return file;
      };
      const promtool = (file: string): { status: number | null; output: string } => {
        const run = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
        if (run.error) throw new Error(`promtool not runnable (apt-get install prometheus): ${run.error.message}`);
        return { status: run.status, output: run.stdout + run.stderr };
      };
      const all = promtool(await rulesFile(queries.map((q) => withLiterals(q.expr, variables))));
      expect(all.output).toContain(`${queries.length} rules found`);
      expect(all.status, all.output).toBe(0);
      expect(promtool(await rulesFile(['sum by (le) (rate(offramp_batch_size_bucket[1m])'])).status).not.toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
