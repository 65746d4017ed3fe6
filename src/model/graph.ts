/**
 * A read-only index over an ONNX graph: who produces and who consumes each tensor, a
 * topological order, ancestor sets, and which nodes are "static" (computable from
 * initializers alone, like Constant nodes), which every segment may simply copy. Splitting
 * (here, online and offline) and cut-point analysis (ramps/cut-points.ts) both walk it.
 */
import type { GraphProto, NodeProto } from './onnx-model.js';

export interface GraphIndex {
  graph: GraphProto;
  nodes: NodeProto[];
  /** Node indices in a topological order. */
  order: number[];
  /** Position of each node in `order`. */
  rank: number[];
  /** Tensor name → index of the node that produces it. */
  producer: Map<string, number>;
  /** Tensor name → indices of nodes that read it (including through subgraphs). */
  consumers: Map<string, number[]>;
  /** Every tensor each node reads, including outer-scope names read inside If/Loop/Scan bodies. */
  nodeInputs: string[][];
  initializers: Set<string>;
  /** Graph inputs that are not initializers: what a caller feeds. */
  modelInputs: string[];
  modelOutputs: string[];
  /** Nodes whose every transitive input is an initializer or another static node. */
  isStatic: boolean[];
}

/** Names a subgraph (If/Loop/Scan body) reads from the enclosing scope. */
function outerScopeReads(graph: GraphProto): string[] {
  const defined = new Set<string>();
  for (const t of graph.initializer ?? []) defined.add(t.name ?? '');
  for (const v of graph.input ?? []) defined.add(v.name ?? '');
  for (const n of graph.node ?? []) for (const o of n.output ?? []) defined.add(o);
  const reads = new Set<string>();
  for (const n of graph.node ?? []) {
    for (const i of n.input ?? []) if (i && !defined.has(i)) reads.add(i);
    for (const a of n.attribute ?? []) {
      for (const g of [a.g, ...(a.graphs ?? [])]) {
        if (g) for (const r of outerScopeReads(g)) if (!defined.has(r)) reads.add(r);
      }
    }
  }
  return [...reads];
}

export function indexGraph(graph: GraphProto): GraphIndex {
  const nodes = graph.node ?? [];
  const initializers = new Set((graph.initializer ?? []).map((t) => t.name ?? ''));
  const modelInputs = (graph.input ?? []).map((v) => v.name ?? '').filter((n) => !initializers.has(n));
  const modelOutputs = (graph.output ?? []).map((v) => v.name ?? '');

  const producer = new Map<string, number>();
  nodes.forEach((n, i) => {
    for (const o of n.output ?? []) if (o) producer.set(o, i);
  });

  const nodeInputs = nodes.map((n) => {
    const names = new Set((n.input ?? []).filter((x) => x !== ''));
    for (const a of n.attribute ?? []) {
      for (const g of [a.g, ...(a.graphs ?? [])]) if (g) for (const r of outerScopeReads(g)) names.add(r);
    }
    return [...names];
  });

  const consumers = new Map<string, number[]>();
  nodeInputs.forEach((inputs, i) => {
    for (const name of inputs) {
      const list = consumers.get(name);
      if (list) list.push(i);
      else consumers.set(name, [i]);
    }
  });

  // Kahn's algorithm; ONNX requires nodes to be sorted already, but exporters are not all strict.
  const pending = nodeInputs.map((inputs) => inputs.filter((name) => producer.has(name)).length);
  const ready: number[] = [];
  pending.forEach((count, i) => {
    if (count === 0) ready.push(i);
  });
  const order: number[] = [];
  while (ready.length > 0) {
    ready.sort((a, b) => a - b); // stable: keep the file's order where it is already valid
    const i = ready.shift() as number;
    order.push(i);
    for (const o of nodes[i]?.output ?? []) {
      for (const c of consumers.get(o) ?? []) {
        pending[c] = (pending[c] ?? 0) - 1;
        if (pending[c] === 0) ready.push(c);
      }
    }
  }
  if (order.length !== nodes.length) throw new Error('graph has a cycle: it is not a valid ONNX model');
  const rank = new Array<number>(nodes.length);
  order.forEach((nodeIndex, position) => {
    rank[nodeIndex] = position;
  });

  const isStatic = new Array<boolean>(nodes.length).fill(false);
  for (const i of order) {
    isStatic[i] = (nodeInputs[i] ?? []).every((name) => {
      if (initializers.has(name)) return true;
      const p = producer.get(name);
      return p !== undefined && isStatic[p] === true;
    });
  }

  return {
    graph,
    nodes,
    order,
    rank,
    producer,
    consumers,
    nodeInputs,
    initializers,
    modelInputs,
    modelOutputs,
    isStatic,
  };
}

/** Indices of the non-static nodes that `tensor` depends on, including its producer. */
export function ancestorNodes(index: GraphIndex, tensor: string): Set<number> {
  const seen = new Set<number>();
  const stack: string[] = [tensor];
  while (stack.length > 0) {
    const name = stack.pop() as string;
    const p = index.producer.get(name);
    if (p === undefined || seen.has(p) || index.isStatic[p]) continue;
    seen.add(p);
    for (const input of index.nodeInputs[p] ?? []) stack.push(input);
  }
  return seen;
}

/** All static nodes (and their static inputs) that the given nodes read, in topological order. */
export function staticSupport(index: GraphIndex, nodes: Iterable<number>): number[] {
  const seen = new Set<number>();
  const stack: string[] = [];
  for (const n of nodes) stack.push(...(index.nodeInputs[n] ?? []));
  while (stack.length > 0) {
    const name = stack.pop() as string;
    const p = index.producer.get(name);
    if (p === undefined || seen.has(p) || !index.isStatic[p]) continue;
    seen.add(p);
    stack.push(...(index.nodeInputs[p] ?? []));
  }
  return [...seen].sort((a, b) => (index.rank[a] ?? 0) - (index.rank[b] ?? 0));
}
