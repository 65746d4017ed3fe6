/**
 * A PromQL checker for queries written by hand against offramp's metrics (the Grafana dashboard,
 * the Prometheus adapter's rules for the Kubernetes autoscaler): every metric a query reads must
 * be one offramp exports (METRIC_TABLE, or a prom-client process metric of a real
 * `createMetrics()` registry), every label it selects, groups or matches on must be on that metric
 * (or be a label the scrape adds), and a label drawn from a closed list must take one of its
 * values. `promtoolCheckRules` has Prometheus' own parser (promtool, from Debian's `prometheus`
 * package, which .ci/run installs) read the queries; a missing promtool throws, naming the package.
 */

import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WORKER_FAILURE_CAUSES } from '../../src/engine/backend.js';
import { OUTCOMES } from '../../src/engine/model-runner.js';
import {
  ADMIN_AUTH_FAILURES,
  EVENT_LOOP_STATS,
  METRIC_TABLE,
  TIER_DECISIONS,
  createMetrics,
  type MetricSpec,
} from '../../src/metrics.js';

/** Labels Prometheus attaches to every scraped series (the scrape target's), not offramp. */
export const PROMETHEUS_TARGET_LABELS: readonly string[] = ['job', 'instance'];

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

/** One PromQL expression, with where it is (for messages) and the label templates shown with it. */
export interface PromQuery {
  where: string;
  expr: string;
  templates: string[];
}

/** The label names each exported series carries, by series name (a histogram's _bucket, _sum and _count). */
export async function exportedSeries(): Promise<Map<string, ReadonlySet<string>>> {
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

/**
 * Problems of one query, against the exported series; the metrics it reads are added to `read`.
 * `targetLabels` are the labels the scrape adds to every series (not offramp's own).
 */
export function checkQuery(
  query: PromQuery,
  expr: string,
  series: Map<string, ReadonlySet<string>>,
  read: Set<string>,
  targetLabels: readonly string[] = PROMETHEUS_TARGET_LABELS,
): string[] {
  const problems: string[] = [];
  let root: Group;
  try {
    root = parseGroups(tokenize(expr));
  } catch (error) {
    return [`${query.where}: ${(error as Error).message}`]; // promtool says more (the test below)
  }
  const labelsOf = (metric: string): ReadonlySet<string> => new Set([...(series.get(metric) ?? []), ...targetLabels]);
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

/**
 * Runs `promtool check rules` on the expressions, as recording rules named `<recordPrefix>_<i>`.
 * Throws when promtool cannot run (install Debian's `prometheus` package).
 */
export async function promtoolCheckRules(
  exprs: readonly string[],
  recordPrefix: string,
): Promise<{ status: number | null; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'offramp-promtool-'));
  try {
    const file = join(dir, 'rules.yml');
    const rules = exprs.map((expr, i) => ({ record: `${recordPrefix}_${i}`, expr }));
    // JSON is YAML, so the rules file needs no YAML quoting of the expressions.
    await writeFile(file, JSON.stringify({ groups: [{ name: recordPrefix.replace(/:/g, '_'), rules }] }));
    const run = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
    if (run.error) throw new Error(`promtool not runnable (apt-get install prometheus): ${run.error.message}`);
    return { status: run.status, output: run.stdout + run.stderr };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
