/**
 * Errors the CLI expects: they are printed as `offramp: <message>` without a stack trace.
 * A `UsageError` means the command line itself was wrong (exit code 2, like commander's own
 * usage errors); a `CliError` means the command ran and failed (exit code 1 by default).
 */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export class UsageError extends CliError {
  constructor(message: string) {
    super(message, 2);
    this.name = 'UsageError';
  }
}
