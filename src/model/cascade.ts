/**
 * Agreement-based cascades (ABC) over a served model: tiers of small member models in front of
 * it, each tier answering a row when its members agree enough (tuner/agreement-rule.ts), the
 * served model — a prepared, possibly ramped backbone — answering whatever every tier passed on.
 *
 * Two things live here, both used by the serving thread and the executor's workers alike:
 *
 *  - **Tier graphs.** A tier's members become one ONNX model (`merged`): every member's nodes,
 *    initializers and tensors renamed under a prefix of its own, the served model's inputs
 *    shared, each member's classifier output turned into probabilities (a Softmax appended
 *    unless the output already is one) and exposed as `member_<i>`. One session call then runs
 *    the whole tier on the input once; onnxruntime runs the members one after another in that
 *    call, without a session call, an input copy and a JS round trip per member. `separate`
 *    builds the same graph per member (one session each). Merging needs the members to agree on
 *    the default opset (an operator's meaning depends on it) and to have no nested graphs
 *    (If/Loop/Scan); a tier that cannot be merged fails to load with the reason, and
 *    `cascade.execution: separate` serves it.
 *
 *  - **The exits view.** The engine and the tuner know exits by number. A cascade numbers its
 *    tiers first — exits 0..T−1 — and the backbone's ramp r is exit T + r (the latency profile
 *    says the same: tuner/latency-model.ts). `cascadeExitsView` makes the manifest the serving
 *    side works from: the backbone's, with the tiers as leading exits and their measured cost
 *    in `profile.tierMs`. The executor reads the real manifest and the tier graphs itself.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CascadeRule } from '../../tuner/agreement-rule.js';
import { readManifest, type PreparedManifest, type RampEntry } from './manifest.js';
import { decodeModel, encodeModel, makeValueInfo, onnx, type GraphProto, type NodeProto } from './onnx-model.js';

/** How a tier's members run: one merged graph, or a session per member. */
export type TierExecution = 'merged' | 'separate';

/** One tier as the executor needs it. */
export interface TierSpec {
  /** Member model paths: ONNX files or prepared model directories (whose model.onnx is used). */
  members: string[];
  rule: CascadeRule;
}

/** Output name of member i's probabilities in a tier graph. */
export function memberOutput(i: number): string {
  return `member_${i}`;
}

/** The ONNX file a member path names: itself, or a prepared directory's unsplit model. */
export async function memberModelFile(path: string): Promise<string> {
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
    throw new Error(
      `cascade member ${path} ${err.code === 'ENOENT' ? 'does not exist' : `cannot be read (${err.code})`}`,
    );
  });
  if (!info.isDirectory()) return path;
  const manifest = await readManifest(path);
  return join(path, manifest.model.file);
}

interface Member {
  path: string;
  graph: GraphProto;
  opset: Map<string, number>;
  irVersion: number;
}

async function readMember(path: string): Promise<Member> {
  const file = await memberModelFile(path);
  let model: onnx.ModelProto;
  try {
    model = decodeModel(await readFile(file));
  } catch (err) {
    throw new Error(`cascade member ${path} is not a readable ONNX model: ${(err as Error).message}`, { cause: err });
  }
  if (!model.graph) throw new Error(`cascade member ${path} has no graph`);
  const opset = new Map<string, number>();
  for (const o of model.opsetImport ?? []) opset.set(o.domain ?? '', Number(o.version ?? 0));
  return { path, graph: model.graph, opset, irVersion: Number(model.irVersion ?? 0) };
}

/**
 * The ONNX models that run a tier, as bytes: one (merged) or one per member (separate). Each
 * reads some of `inputs` (the served model's input names; a member reading any other input is
 * refused) and writes `member_<i>`: [rows × classes] probabilities.
 */
export async function buildTierModels(
  spec: TierSpec,
  inputs: readonly string[],
  execution: TierExecution,
): Promise<Uint8Array[]> {
  const members = await Promise.all(spec.members.map(readMember));
  if (execution === 'separate') return members.map((m, i) => encodeModel(mergeMembers([{ ...m, index: i }], inputs)));
  return [
    encodeModel(
      mergeMembers(
        members.map((m, i) => ({ ...m, index: i })),
        inputs,
      ),
    ),
  ];
}

function mergeMembers(members: (Member & { index: number })[], inputs: readonly string[]): onnx.IModelProto {
  const defaultOpset = new Set(members.map((m) => m.opset.get('') ?? 0));
  if (defaultOpset.size > 1)
    throw new Error(
      `cascade members of one tier use different ONNX opsets (${members.map((m) => `${m.path}: ${m.opset.get('') ?? '?'}`).join(', ')}); ` +
        'export them at one opset, or set cascade.execution: separate',
    );
  const opset = new Map<string, number>();
  for (const m of members) for (const [domain, v] of m.opset) opset.set(domain, Math.max(opset.get(domain) ?? 0, v));
  const version = opset.get('') ?? 13;
  const nodes: NodeProto[] = [];
  const initializers: onnx.ITensorProto[] = [];
  const valueInfo: onnx.IValueInfoProto[] = [];
  const graphInputs = new Map<string, onnx.IValueInfoProto>();
  const outputs: onnx.IValueInfoProto[] = [];
  for (const m of members) {
    const g = m.graph;
    const initNames = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
    const own = (g.input ?? []).filter((io) => !initNames.has(io.name ?? ''));
    for (const io of own) {
      const name = io.name ?? '';
      if (!inputs.includes(name))
        throw new Error(
          `cascade member ${m.path} reads input '${name}', which the served model does not have (its inputs: ${inputs.join(', ')})`,
        );
      if (!graphInputs.has(name)) graphInputs.set(name, io);
    }
    const shared = new Set(own.map((io) => io.name ?? ''));
    const prefix = `m${m.index}/`;
    const rename = (name: string | null | undefined): string =>
      !name ? '' : shared.has(name) ? name : `${prefix}${name}`;
    for (const node of g.node ?? []) {
      if ((node.attribute ?? []).some((a) => a.g || (a.graphs && a.graphs.length > 0)))
        throw new Error(
          `cascade member ${m.path} has a nested graph (${node.opType} node); set cascade.execution: separate`,
        );
      nodes.push({
        ...node,
        name: `${prefix}${node.name ?? nodes.length}`,
        input: (node.input ?? []).map(rename),
        output: (node.output ?? []).map(rename),
      });
    }
    for (const t of g.initializer ?? []) initializers.push({ ...t, name: rename(t.name) });
    for (const v of g.valueInfo ?? []) valueInfo.push({ ...v, name: rename(v.name) });
    const out = g.output?.[0];
    if (!out?.name) throw new Error(`cascade member ${m.path} has no output`);
    const producer = (g.node ?? []).find((n) => (n.output ?? []).includes(out.name as string));
    const result = memberOutput(m.index);
    if (producer?.opType === 'Softmax') {
      nodes.push({ opType: 'Identity', name: `${prefix}probabilities`, input: [rename(out.name)], output: [result] });
    } else {
      // Logits (or scores) → probabilities over the last axis; before opset 13 Softmax flattens
      // from `axis` on, which for [rows × classes] is the same with axis 1.
      nodes.push({
        opType: 'Softmax',
        name: `${prefix}probabilities`,
        input: [rename(out.name)],
        output: [result],
        attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: version >= 13 ? -1 : 1 }],
      });
    }
    outputs.push(makeValueInfo(result, out.type?.tensorType?.elemType ?? 1, ['rows', 'classes']));
  }
  return {
    irVersion: Math.max(...members.map((m) => m.irVersion)),
    producerName: 'offramp-cascade',
    opsetImport: [...opset].map(([domain, v]) => ({ domain, version: v })),
    graph: {
      name: 'tier',
      node: nodes,
      initializer: initializers,
      valueInfo,
      input: [...graphInputs.values()],
      output: outputs,
    },
  };
}

/** A tier as the serving side describes it (metadata, /exits). */
export interface TierEntry {
  /** 0-based; tier T is the served model. */
  index: number;
  /** Member paths as configured. */
  members: string[];
  rule: CascadeRule;
  /** Fixed θ, or 'tuned'. */
  theta: number | 'tuned';
}

/**
 * The manifest the serving side works from for a cascade in front of `backbone`: exits 0..T−1
 * are the tiers (computeBefore: the tiers' cost before it, as a share of the backbone's), exit
 * T + r is the backbone's ramp r; the profile gains `tierMs` (measured by the server at load:
 * src/engine/executor/cascade-runner.ts, `profileTiers`).
 */
export function cascadeExitsView(
  backbone: PreparedManifest,
  tiers: readonly TierEntry[],
  tierMs: number[][],
): PreparedManifest {
  const T = tiers.length;
  const full = backbone.profile.fullModelMs[0] ?? 1;
  let before = 0;
  const tierExits: RampEntry[] = tiers.map((tier, t) => {
    const entry: RampEntry = {
      id: t,
      tensor: `tier ${t}`,
      dims: [],
      computeBefore: before / full,
      side: [],
      head: {
        file: '',
        kind: 'ensemble',
        features: tier.members.length,
        hidden: 0,
        temperature: 1,
        trials: [],
        exportMaxDiff: 0,
      },
      agreement: Number.NaN,
      soloExit: { budget: 0, exitFraction: 0, threshold: 1 },
      soloCurve: [],
    };
    before += tierMs[t]?.[0] ?? 0;
    return entry;
  });
  return {
    ...backbone,
    ramps: [...tierExits, ...backbone.ramps.map((r) => ({ ...r, id: r.id + T }))],
    profile: { ...backbone.profile, tierMs },
  };
}
