/**
 * The agreement-based cascades `--cascade` serves (issue 14), per task: which member models stand
 * in front of which backbone, keyed by the prepared model's manifest name. Paths are relative to
 * the repository root (the bench runs from there); SLO files get them absolute, because a
 * member path in an SLO file resolves against the file's folder.
 *
 * The policies built from a task (`cascadePolicies`), each on a fresh server as every policy:
 *
 *   abc-fixed     the task's three members as one tier, vote rule, θ = 1 (all agree), tuner static,
 *                 no ramps: ABC as published
 *   abc-tuned     the same tier, score rule, θ chosen by the guarded tuner under the budget, no ramps
 *   single-small  the classic confidence cascade ABC compares against: a tier of the one member
 *                 that agrees most with the backbone, score rule, tuned θ, no ramps
 *   abc-ramps     abc-tuned in front of the ramped backbone (ramps as guarded-drop serves them):
 *                 offramp's extension, not part of ABC
 *
 * Every cascade is served in drop mode: a row a tier answers leaves the batch, which is where the
 * compute saving comes from (src/engine/executor/cascade-runner.ts).
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { CascadeRule } from '../../tuner/agreement-rule.js';
import type { ServedPolicy, TierConfig } from './policies.js';

export interface CascadeTask {
  /** The manifest name of the backbone the members were distilled from. */
  model: string;
  /** Member name (as the training report keys it) → ONNX file, in tier order. */
  members: Record<string, string>;
  /** The members' training report: per member its agreement with the backbone on the test split. */
  report: string;
}

export const CASCADE_TASKS: Readonly<Record<string, CascadeTask>> = {
  'fmnist-resnet': {
    model: 'fmnist-resnet',
    members: {
      logreg: 'models/members/fmnist-logreg.onnx',
      mlp: 'models/members/fmnist-mlp.onnx',
      cnn: 'models/members/fmnist-cnn.onnx',
    },
    report: 'models/members/fmnist-members.train.json',
  },
  'spam-bert': {
    model: 'spam-bert',
    members: {
      meanemb: 'models/members/spam-meanemb.onnx',
      cnn1d: 'models/members/spam-cnn1d.onnx',
      transformer1: 'models/members/spam-transformer1.onnx',
    },
    report: 'models/members/spam-members.train.json',
  },
};

export function cascadeTaskFor(modelName: string): CascadeTask {
  const task = CASCADE_TASKS[modelName];
  if (!task)
    throw new Error(
      `--cascade: no cascade members are defined for ${modelName} (bench/lib/cascades.ts knows ${Object.keys(CASCADE_TASKS).join(', ')})`,
    );
  return task;
}

/** A member chosen for the single-model cascade, with the figure it was chosen by. */
export interface ChosenMember {
  name: string;
  path: string;
  /** Its agreement with the backbone on the test split, from the training report. */
  agreement: number;
}

/**
 * The member that agrees most with the backbone, per the members' training report. The two
 * recipes name the figure differently (`agreement_with_backbone` for the image members,
 * `test_agreement_with_backbone` for the text members); both are the test-split agreement.
 */
export async function bestMember(task: CascadeTask): Promise<ChosenMember> {
  const report = JSON.parse(await readFile(task.report, 'utf8')) as {
    members?: Record<string, { agreement_with_backbone?: number; test_agreement_with_backbone?: number }>;
  };
  const figures = Object.keys(task.members).map((name) => {
    const m = report.members?.[name];
    const agreement = m?.agreement_with_backbone ?? m?.test_agreement_with_backbone;
    if (typeof agreement !== 'number')
      throw new Error(`${task.report}: no agreement with the backbone for member ${name}`);
    return { name, path: task.members[name] as string, agreement };
  });
  return figures.reduce((a, b) => (b.agreement > a.agreement ? b : a));
}

/** The cascade policies of a task, in the order they are served (after vanilla and guarded-drop). */
export function cascadePolicies(task: CascadeTask, single: ChosenMember): ServedPolicy[] {
  const members = Object.values(task.members).map((p) => resolve(p));
  const tier = (paths: string[], rule: CascadeRule, theta: number | 'tuned'): TierConfig[] => [
    { members: paths, rule, theta },
  ];
  return [
    {
      policy: 'abc-fixed',
      mode: 'drop',
      tuner: 'static',
      about: `ABC as published: one tier of ${Object.keys(task.members).join(', ')}, answering when all three vote alike (vote rule, θ = 1); no ramps`,
      cascade: { tiers: tier(members, 'vote', 1), maxRamps: 0 },
    },
    {
      policy: 'abc-tuned',
      mode: 'drop',
      tuner: 'guarded',
      about:
        "the same tier by the members' mean probability of the plurality (score rule), θ tuned by the guarded tuner under the budget; no ramps",
      cascade: { tiers: tier(members, 'score', 'tuned'), maxRamps: 0 },
    },
    {
      policy: 'single-small',
      mode: 'drop',
      tuner: 'guarded',
      about:
        `the classic confidence cascade ABC compares against: one tier of ${single.name} alone (the member agreeing most ` +
        `with the backbone, ${(single.agreement * 100).toFixed(1)} % on the test split), score rule, θ tuned; no ramps`,
      cascade: { tiers: tier([resolve(single.path)], 'score', 'tuned'), maxRamps: 0 },
    },
    {
      policy: 'abc-ramps',
      mode: 'drop',
      tuner: 'guarded',
      about:
        "offramp's extension, not part of ABC: abc-tuned in front of the ramped backbone, whose ramps start as " +
        "guarded-drop's and are guarded alike (behind a cascade the ramp set stays as it starts)",
      cascade: { tiers: tier(members, 'score', 'tuned') },
    },
  ];
}
