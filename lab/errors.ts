/**
 * Typed errors with stable codes. The CLI maps them to exit codes in one place
 * (lab/cli/main.ts); nothing below the CLI calls process.exit().
 */
export type ErrorCode =
  | 'CONFIG' // bad topology or scenario file: exit 2, nothing started
  | 'USAGE' // bad command line: exit 2
  | 'PREREQ' // not root, missing program: exit 3
  | 'LAB' // provisioning or teardown failed: exit 4
  | 'MIGRATION' // a migration failed (guest stays on source): exit 1
  | 'THRESHOLD' // a scenario threshold did not hold: exit 1
  | 'REGRESSION' // compare found a regression: exit 1
  | 'INTERRUPTED'; // Ctrl-C: exit 130

export class MigralabError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'MigralabError';
  }
}

export interface ConfigIssue {
  line: number;
  col: number;
  /** Dotted path of the field, e.g. `guest.memory` or `nodes[1].roles`. */
  field: string;
  expected: string;
}

/** A bad topology or scenario file; every issue points at file:line:col. */
export class ConfigError extends MigralabError {
  constructor(
    readonly file: string,
    readonly issues: ConfigIssue[],
  ) {
    super('CONFIG', issues.map((i) => `${file}:${i.line}:${i.col} ${i.field || '(document)'}: ${i.expected}`).join('\n'));
    this.name = 'ConfigError';
  }
}

export const exitCodes: Record<ErrorCode, number> = {
  CONFIG: 2,
  USAGE: 2,
  PREREQ: 3,
  LAB: 4,
  MIGRATION: 1,
  THRESHOLD: 1,
  REGRESSION: 1,
  INTERRUPTED: 130,
};

export function exitCodeOf(err: unknown): number {
  return err instanceof MigralabError ? exitCodes[err.code] : 1;
}
