/** What the numbers were measured on and from, stored with every result (timings mean nothing without it). */
import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, loadavg, release, totalmem, type as osType } from 'node:os';
import { join } from 'node:path';

export interface MachineInfo {
  cpu_model: string;
  cores: number;
  memory_gib: number;
  os: string;
  node: string;
  /** 1-minute load average when the bench started: other work on the machine skews timings. */
  load_average_1m: number;
}

export function machineInfo(): MachineInfo {
  return {
    cpu_model: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memory_gib: Number((totalmem() / 2 ** 30).toFixed(1)),
    os: `${osType()} ${release()}`,
    node: process.version,
    load_average_1m: loadavg()[0] ?? 0,
  };
}

/**
 * Where a results file came from. A figure quoted in the README must come from a file with
 * `clean: true`: the commit alone does not say what ran when the tree had local changes.
 */
export interface Provenance {
  /** HEAD when the run started; null outside a git checkout. */
  commit: string | null;
  /** `git status --porcelain` was empty (untracked files included); null outside a git checkout. */
  clean: boolean | null;
  /** The exact command line: the node binary, its flags and the script's arguments. */
  command: string[];
  machine: MachineInfo;
  /** The machine's 1-minute load average when the run started and when it finished. */
  load_average_1m: { start: number; end: number | null };
}

/** Read-only git queries, at the start of a run (the end is filled in by finishProvenance). */
export function provenance(): Provenance {
  let commit: string | null = null;
  let clean: boolean | null = null;
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
    clean = execFileSync('git', ['status', '--porcelain'], { encoding: 'utf8' }).trim().length === 0;
  } catch {
    // Not a git checkout (an unpacked tarball): provenance says so with nulls.
  }
  const machine = machineInfo();
  return {
    commit,
    clean,
    command: [process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    machine,
    load_average_1m: { start: machine.load_average_1m, end: null },
  };
}

export function finishProvenance(p: Provenance): Provenance {
  return { ...p, load_average_1m: { ...p.load_average_1m, end: loadavg()[0] ?? 0 } };
}

/** One line for a report's head: commit, tree state, machine, load. */
export function provenanceLine(p: Provenance): string {
  const m = p.machine;
  const load = p.load_average_1m;
  return (
    `Commit ${p.commit?.slice(0, 10) ?? 'unknown'} ` +
    `(${p.clean === null ? 'tree state unknown' : p.clean ? 'clean tree' : 'tree with local changes'}); ` +
    `${m.cpu_model}, ${m.cores} cores, ${m.memory_gib} GiB, ${m.os}, Node ${m.node}; ` +
    `load average ${load.start.toFixed(2)} at start, ${load.end === null ? '?' : load.end.toFixed(2)} at end. ` +
    `Command: \`${p.command.map((a) => a.split('/').slice(-2).join('/')).join(' ')}\`.`
  );
}

/**
 * Writes a measurement's report as `<dir>/<name>-<UTC start>.md` and `.json` (colons out of the
 * time, so the names are valid everywhere); returns the path without extension.
 */
export async function writeResultPair(
  dir: string,
  name: string,
  started: Date,
  markdown: string,
  json: unknown,
): Promise<string> {
  const stamp = started
    .toISOString()
    .replace(/[:]/g, '-')
    .replace(/\.\d+Z$/, 'Z');
  await mkdir(dir, { recursive: true });
  const base = join(dir, `${name}-${stamp}`);
  await writeFile(`${base}.md`, `${markdown}\n`);
  await writeFile(`${base}.json`, `${JSON.stringify(json, null, 2)}\n`);
  return base;
}
