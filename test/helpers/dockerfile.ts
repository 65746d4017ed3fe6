/**
 * A Dockerfile's build run without a container engine (none runs where the tests do): each stage's
 * COPY, WORKDIR, RUN and ENV carried out in a folder of its own that stands for the stage's root
 * file system, and what the image would run (CMD, HEALTHCHECK, USER, ENV, EXPOSE, STOPSIGNAL)
 * handed back so that a test can start it. test/production-install.test.ts runs the repository's
 * Dockerfile this way.
 *
 * Only what that Dockerfile uses is understood; anything else throws, so that an edit the
 * emulation cannot follow fails the test instead of being skipped over:
 * - FROM image [AS name]; WORKDIR; COPY [--from=stage] src... dest; RUN [--mount=type=cache,...]
 *   in shell form; ENV k=v ...; USER; EXPOSE; HEALTHCHECK [--flag=value...] CMD [exec form];
 *   CMD [exec form]; STOPSIGNAL; comments and `\` line continuations.
 * - .dockerignore lines: paths and `*`, `?`, `**` patterns (no `!` exceptions).
 *
 * Where it differs from a real build, and why that is sound for the test:
 * - The base image's file system is this machine's: RUN finds node and npm on the host PATH. So a
 *   RUN command must use paths relative to its WORKDIR (an absolute one would reach the host's
 *   own files): absolute paths throw.
 * - Absolute paths in ENV values and CMD arguments that name a place the Dockerfile itself made
 *   (a WORKDIR, a COPY destination) are moved into the stage's folder.
 * - A cache mount (`RUN --mount=type=cache`) is the host's npm cache: RUN commands run with npm
 *   preferring its cache (`--prefer-offline`), so a warm cache (CI's own `npm ci` fills it)
 *   serves every package without the network.
 * - USER: run as that user's uid when this process is root (the node images' `node` is uid 1000);
 *   otherwise as this process's own, already unprivileged, user.
 */
import { spawn } from 'node:child_process';
import { chmod, chown, copyFile, lstat, mkdir, readdir, readFile, readlink, symlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join, posix } from 'node:path';

export interface Instruction {
  /** Upper case: FROM, COPY, RUN … */
  keyword: string;
  /** The rest of the instruction, continuations joined. */
  args: string;
  /** 1-based line where the instruction starts. */
  line: number;
}

export interface Stage {
  image: string;
  name: string;
  instructions: Instruction[];
}

const KEYWORDS = new Set([
  'FROM',
  'WORKDIR',
  'COPY',
  'RUN',
  'ENV',
  'USER',
  'EXPOSE',
  'HEALTHCHECK',
  'CMD',
  'STOPSIGNAL',
]);

/** Splits a Dockerfile into stages of instructions. */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const first = lines[i]!.trim();
    if (first === '' || first.startsWith('#')) continue;
    const line = i + 1;
    let joined = first;
    // A trailing backslash continues the instruction; comment lines inside it are dropped, as Docker does.
    while (joined.endsWith('\\')) {
      joined = joined.slice(0, -1);
      do i++;
      while (i < lines.length && lines[i]!.trim().startsWith('#'));
      if (i >= lines.length) throw new Error(`Dockerfile:${line}: the last line ends with a continuation`);
      joined += ` ${lines[i]!.trim()}`;
    }
    const match = /^(\S+)\s+(.*)$/s.exec(joined);
    if (!match) throw new Error(`Dockerfile:${line}: an instruction without arguments: ${joined}`);
    const keyword = match[1]!.toUpperCase();
    if (!KEYWORDS.has(keyword))
      throw new Error(`Dockerfile:${line}: ${keyword} is not emulated (test/helpers/dockerfile.ts)`);
    const args = match[2]!.replace(/\s+/g, ' ').trim();
    if (keyword === 'FROM') {
      const from = /^(\S+)(?: AS (\S+))?$/i.exec(args);
      if (!from) throw new Error(`Dockerfile:${line}: FROM ${args}: expected \`image [AS name]\``);
      stages.push({ image: from[1]!, name: from[2] ?? String(stages.length), instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile:${line}: ${keyword} before any FROM`);
    stage.instructions.push({ keyword, args, line });
  }
  return stages;
}

/** A predicate on context-relative paths (`src/server.ts`) from a .dockerignore's text: true when the path is left out. */
export function dockerignore(text: string): (path: string) => boolean {
  const patterns = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      if (l.startsWith('!') || /[[\]{}]/.test(l)) throw new Error(`.dockerignore: ${l}: not emulated`);
      const clean = posix.normalize(l.replace(/^\/+/, '')).replace(/\/+$/, '');
      // `**` any number of path segments, `*` and `?` within one segment (Go's filepath.Match).
      const source = clean
        .split('/')
        .map((segment) =>
          segment === '**'
            ? '(?:.*)'
            : segment
                .replace(/[.+^$()|\\]/g, '\\$&')
                .replace(/\*/g, '[^/]*')
                .replace(/\?/g, '[^/]'),
        )
        .join('/')
        .replace(/\(\?:\.\*\)\//g, '(?:.*/)?');
      return new RegExp(`^${source}$`);
    });
  // A left-out folder leaves out everything in it.
  return (path) => {
    const parts = path.split('/');
    return parts.some((_, n) => {
      const prefix = parts.slice(0, n + 1).join('/');
      return patterns.some((p) => p.test(prefix));
    });
  };
}

/** What the built image would run. */
export interface ImageConfig {
  /** The stage's folder, standing for the image's `/`. */
  root: string;
  /** The WORKDIR, in the stage's folder. */
  workdir: string;
  /** The environment a container would start with (this machine's base, OFFRAMP_* removed, then every ENV). */
  env: Record<string, string>;
  /** USER as written (`node`), and the uid/gid a process here runs as for it (undefined: this process's own). */
  user: string;
  uid: number | undefined;
  gid: number | undefined;
  exposed: number[];
  /** The output of each RUN, in order. */
  runOutputs: string[];
  healthcheck: { options: Record<string, string>; command: string[] } | undefined;
  cmd: string[];
  stopSignal: string | undefined;
}

export interface EmulateOptions {
  /** The build context (the repository). */
  context: string;
  /** From the context's .dockerignore. */
  ignored: (path: string) => boolean;
  /** The stage's folder. */
  root: string;
  /** Folders of the stages built before, by name, for COPY --from. */
  stages: ReadonlyMap<string, string>;
  /** Each RUN's output, as it comes. */
  log?: (text: string) => void;
  /**
   * A node_modules folder installed by `npm ci` from the same package.json and lock. When given,
   * a RUN that is exactly `npm ci [--flags]` with every dependency (no --omit) links it instead of
   * installing again, then runs `npm run prepare`, the rest of what `npm ci` does.
   */
  installedDependencies?: string | undefined;
}

/** The node images' users. */
const USERS: Record<string, number> = { root: 0, node: 1000 };

/** Builds one stage into `options.root`; resolves with what its image would run. */
export async function emulateStage(stage: Stage, options: EmulateOptions): Promise<ImageConfig> {
  const { root } = options;
  await mkdir(root, { recursive: true });
  // A folder other users can enter: the image's USER runs here too.
  await chmod(root, 0o755);
  const asRoot = process.getuid?.() === 0;
  /** Image paths the Dockerfile made, whose mention in ENV and CMD moves into the stage's folder. */
  const made: string[] = [];
  const inRoot = (imagePath: string) => join(root, imagePath);
  const mapPath = (word: string) =>
    isAbsolute(word) && made.some((m) => word === m || word.startsWith(`${m}/`)) ? inRoot(word) : word;
  let workdir = '/';
  const image: ImageConfig = {
    root,
    workdir: root,
    // HOME stays this machine's while the stage runs as root, so that npm reads the same user
    // config (registry, cache) as the `npm ci` that warmed the cache.
    env: baseEnv(),
    user: 'root',
    uid: undefined,
    gid: undefined,
    exposed: [],
    runOutputs: [],
    healthcheck: undefined,
    cmd: [],
    stopSignal: undefined,
  };
  for (const { keyword, args, line } of stage.instructions) {
    const where = `Dockerfile:${line}: ${keyword}`;
    switch (keyword) {
      case 'WORKDIR':
        workdir = posix.resolve(workdir, args);
        made.push(workdir);
        await mkdir(inRoot(workdir), { recursive: true });
        image.workdir = inRoot(workdir);
        break;
      case 'COPY': {
        const words = args.split(' ');
        let from: string | undefined;
        while (words[0]?.startsWith('--')) {
          const flag = words.shift()!;
          if (!flag.startsWith('--from=')) throw new Error(`${where}: ${flag} is not emulated`);
          from = flag.slice('--from='.length);
        }
        const dest = posix.resolve(workdir, words.pop() ?? '');
        if (words.length === 0) throw new Error(`${where}: no source`);
        const intoFolder = words.length > 1 || args.endsWith('/');
        made.push(intoFolder ? dest : posix.dirname(dest));
        for (const source of words) {
          if (/[*?[]/.test(source)) throw new Error(`${where}: wildcards are not emulated`);
          if (from !== undefined) {
            const fromRoot = options.stages.get(from);
            if (!fromRoot) throw new Error(`${where}: no stage ${from} before this one`);
            await copyInto(join(fromRoot, source), inRoot(dest), intoFolder, () => false, '');
          } else {
            const relative = posix.normalize(source).replace(/^\.?\/+|\/+$/g, '') || '.';
            if (relative.startsWith('..')) throw new Error(`${where}: ${source} is outside the context`);
            // Docker does not find a source that .dockerignore leaves out.
            if (relative !== '.' && options.ignored(relative))
              throw new Error(`${where}: ${source} is left out by .dockerignore`);
            const context = relative === '.' ? options.context : join(options.context, relative);
            await copyInto(context, inRoot(dest), intoFolder, options.ignored, relative === '.' ? '' : relative);
          }
        }
        break;
      }
      case 'RUN': {
        let command = args;
        while (command.startsWith('--')) {
          const flag = /^(\S+)\s+/.exec(command)![1]!;
          if (!/^--mount=type=cache,target=\/root\/\.npm(,|$)/.test(flag))
            throw new Error(
              `${where}: ${flag} is not emulated (only npm's cache mount, played by the host's npm cache)`,
            );
          command = command.slice(flag.length).trimStart();
        }
        const absolute = /(?:^|[\s'"=])(\/[\w.-]+)/.exec(command);
        if (absolute) throw new Error(`${where}: ${absolute[1]}: absolute paths would reach this machine's files`);
        if (
          options.installedDependencies !== undefined &&
          /^npm ci(?: --[\w-]+)*$/.test(command) &&
          !/--omit/.test(command)
        ) {
          await symlink(options.installedDependencies, join(image.workdir, 'node_modules'));
          command = 'npm run prepare';
        }
        const output = await run(['sh', '-c', command], {
          cwd: image.workdir,
          env: { ...image.env, ...NPM_FROM_CACHE },
          ...(image.uid === undefined ? {} : { uid: image.uid, gid: image.gid! }),
          log: options.log,
          what: where,
        });
        image.runOutputs.push(output);
        break;
      }
      case 'ENV':
        for (const [key, value] of parseEnv(args, where)) {
          // Paths are moved before variables are expanded, so that only the Dockerfile's own are.
          image.env[key] = expand(value.split(':').map(mapPath).join(':'), image.env);
        }
        break;
      case 'USER': {
        const uid = USERS[args] ?? (/^\d+$/.test(args) ? Number(args) : undefined);
        if (uid === undefined) throw new Error(`${where}: unknown user ${args}`);
        image.user = args;
        if (asRoot && uid !== 0) {
          image.uid = uid;
          image.gid = uid;
          const home = inRoot(`/home/${args}`);
          await mkdir(home, { recursive: true });
          await chown(home, uid, uid);
          image.env.HOME = home;
        } else {
          image.uid = undefined;
          image.gid = undefined;
        }
        break;
      }
      case 'EXPOSE':
        image.exposed.push(...args.split(' ').map((p) => Number(p.replace(/\/tcp$/, ''))));
        break;
      case 'HEALTHCHECK': {
        const match = /^((?:--[\w-]+=\S+ )*)CMD (\[.*\])$/.exec(args);
        if (!match) throw new Error(`${where}: expected [--flag=value ...] CMD [exec form]`);
        const flags = match[1]!.trim().split(' ').filter(Boolean);
        image.healthcheck = {
          options: Object.fromEntries(flags.map((f) => f.slice(2).split('=') as [string, string])),
          command: execForm(match[2]!, where).map(mapPath),
        };
        break;
      }
      case 'CMD':
        image.cmd = execForm(args, where).map(mapPath);
        break;
      case 'STOPSIGNAL':
        image.stopSignal = args;
        break;
      default:
        throw new Error(`${where}: not emulated`);
    }
  }
  return image;
}

/** npm in RUN: packages from this machine's cache (CI's `npm ci` warmed it), no update check. */
const NPM_FROM_CACHE = {
  npm_config_cache: process.env.npm_config_cache ?? join(homedir(), '.npm'),
  npm_config_prefer_offline: 'true',
  npm_config_update_notifier: 'false',
};

/**
 * This machine's environment as the base image's: without offramp's own variables, and without
 * the npm_* variables an enclosing `npm test` sets (its prefix and lifecycle would leak into the
 * stage's npm), except where npm's cache is.
 */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value === undefined || key.startsWith('OFFRAMP_') || key === 'INIT_CWD') continue;
    if (/^npm_/i.test(key) && key.toLowerCase() !== 'npm_config_cache') continue;
    env[key] = value;
  }
  return env;
}

function execForm(text: string, where: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`${where}: only the exec form (a JSON array) is emulated`);
  }
  if (!Array.isArray(parsed) || parsed.length === 0 || !parsed.every((w) => typeof w === 'string'))
    throw new Error(`${where}: expected a non-empty JSON array of strings`);
  return parsed;
}

/** `K=V K2="v 2"` pairs. */
function parseEnv(text: string, where: string): [string, string][] {
  const pairs: [string, string][] = [];
  const pattern = /\s*([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/gy;
  let match: RegExpExecArray | null;
  while ((match = pattern.exec(text)) !== null) {
    const raw = match[2]!;
    pairs.push([match[1]!, raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw]);
    if (pattern.lastIndex === text.length) return pairs;
  }
  throw new Error(`${where}: expected KEY=value pairs`);
}

/** `$NAME` and `${NAME}` from `env` (unset: empty, as Docker does). */
function expand(value: string, env: Record<string, string>): string {
  return value.replace(/\$(?:\{(\w+)\}|(\w+))/g, (_, braced?: string, bare?: string) => env[braced ?? bare!] ?? '');
}

/**
 * COPY of one source: a folder's contents go into `dest`; a file goes to `dest`, or into it when
 * `intoFolder`. Symbolic links are copied as links, modes kept, as Docker does; `ignored` is asked
 * about every context path (`prefix`/…) below the source.
 */
async function copyInto(
  source: string,
  dest: string,
  intoFolder: boolean,
  ignored: (path: string) => boolean,
  prefix: string,
): Promise<void> {
  const stat = await lstat(source);
  if (!stat.isDirectory()) {
    await copyEntry(source, intoFolder ? join(dest, basename(source)) : dest);
    return;
  }
  await mkdir(dest, { recursive: true });
  for (const name of await readdir(source)) {
    const relative = prefix === '' ? name : `${prefix}/${name}`;
    if (ignored(relative)) continue;
    const from = join(source, name);
    if ((await lstat(from)).isDirectory()) await copyInto(from, join(dest, name), true, ignored, relative);
    else await copyEntry(from, join(dest, name));
  }
}

async function copyEntry(from: string, to: string): Promise<void> {
  await mkdir(dirname(to), { recursive: true });
  if ((await lstat(from)).isSymbolicLink()) await symlink(await readlink(from), to);
  else await copyFile(from, to);
}

/** Runs a command to its end; throws with the end of its output when it fails. */
export function run(
  argv: string[],
  options: {
    cwd: string;
    env: Record<string, string>;
    uid?: number;
    gid?: number;
    log?: ((text: string) => void) | undefined;
    what: string;
  },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(options.uid === undefined ? {} : { uid: options.uid, gid: options.gid! }),
    });
    let output = '';
    const take = (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      output += text;
      options.log?.(text);
    };
    child.stdout.on('data', take);
    child.stderr.on('data', take);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve(output);
      else reject(new Error(`${options.what}: exited ${signal ?? String(code)}:\n${output.slice(-4000)}`));
    });
  });
}

/** The Dockerfile and .dockerignore of a build context. */
export async function readBuildFiles(
  context: string,
): Promise<{ stages: Stage[]; ignored: (path: string) => boolean }> {
  const [dockerfile, ignore] = await Promise.all([
    readFile(join(context, 'Dockerfile'), 'utf8'),
    readFile(join(context, '.dockerignore'), 'utf8'),
  ]);
  return { stages: parseDockerfile(dockerfile), ignored: dockerignore(ignore) };
}
