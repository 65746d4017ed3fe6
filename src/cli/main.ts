/**
 * The `offramp` command line. `bin/offramp.js` calls `main` and uses its result as the exit
 * code, so nothing here calls `process.exit`: tests run commands in-process.
 *
 * Each subcommand lives in its own `*-command.ts` file exporting `register…Command(program)`.
 */
import { Command, CommanderError } from 'commander';
import { isOfframpError } from '../errors.js';
import { CliError } from './errors.js';
import { registerInspectCommand } from './inspect-command.js';
import { registerVerifyCommand } from './verify-command.js';
import { registerPrepareCommand } from './prepare-command.js';
import { registerRecordCommand } from './record-command.js';
import { registerServeCommand } from './serve-command.js';
import { registerReplayCommand } from './replay-command.js';
import { registerProfileCommand } from './profile-command.js';
import { packageVersion } from './version.js';

const EXIT_USAGE = 2;

/** Commander errors that mean "done, successfully": help or version was printed. */
const COMMANDER_SUCCESS = new Set(['commander.helpDisplayed', 'commander.version']);

export function buildProgram(): Command {
  const program = new Command('offramp');
  program
    .description(
      'Early-exit model serving: find cut points in an ONNX classifier, split it, train exit ramps and serve confident requests early.',
    )
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help for a command')
    .showHelpAfterError("(run 'offramp --help' or 'offramp <command> --help' for usage)")
    .exitOverride()
    .configureOutput({
      writeOut: (text) => process.stdout.write(text),
      writeErr: (text) => process.stderr.write(text),
      // Commander prefixes its messages with "error: "; print them like every other failure.
      outputError: (text, write) => write(text.replace(/^error: /, 'offramp: ')),
    });
  // Subcommands copy the settings above (exitOverride, output) when created with .command().
  registerInspectCommand(program);
  registerVerifyCommand(program);
  // ── prepare ── (src/cli/prepare-command.ts, owned by the lead)
  registerPrepareCommand(program);
  registerProfileCommand(program);
  registerRecordCommand(program);
  registerServeCommand(program);
  registerReplayCommand(program);
  return program;
}

/** Runs the CLI with `argv` (without the node and script paths); resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    return reportError(err);
  }
}

function reportError(err: unknown): number {
  if (err instanceof CommanderError) {
    // Commander has already printed its message (or the help text).
    if (COMMANDER_SUCCESS.has(err.code)) return 0;
    return EXIT_USAGE;
  }
  if (err instanceof CliError) {
    process.stderr.write(`offramp: ${err.message}\n`);
    return err.exitCode;
  }
  if (err instanceof Error) {
    process.stderr.write(`offramp: ${err.message}\n`);
    // Plain Errors are how ramps/, the model layer and onnxruntime report bad input, and coded
    // OfframpErrors (an invalid config) are documented answers; anything else (TypeError,
    // RangeError, …) is a bug in offramp, and the stack is what a bug report needs.
    if (err.constructor !== Error && !isOfframpError(err) && err.stack) process.stderr.write(`${err.stack}\n`);
    return 1;
  }
  process.stderr.write(`offramp: ${String(err)}\n`);
  return 1;
}
