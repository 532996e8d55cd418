import { execa } from 'execa';
import { MigralabError } from '../errors.ts';

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

export interface RunOptions {
  input?: string;
  timeoutMs?: number;
  /** When false, a non-zero exit is returned instead of thrown. */
  check?: boolean;
}

/** Runs argv (never through a shell) and returns its output. */
export async function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('run: empty argv');
  const r = await execa(file, args, {
    reject: false,
    input: opts.input,
    timeout: opts.timeoutMs ?? 120_000,
    stripFinalNewline: true,
    encoding: 'utf8',
  });
  const result: RunResult = { stdout: r.stdout ?? '', stderr: r.stderr ?? '', exitCode: r.exitCode ?? -1 };
  if (r.failed && (opts.check ?? true)) {
    const why = r.timedOut ? `timed out after ${opts.timeoutMs ?? 120_000} ms` : r.code === 'ENOENT' ? 'program not found' : `exit ${r.exitCode}`;
    throw new MigralabError('LAB', `${argv.join(' ')}: ${why}${result.stderr ? `: ${result.stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`);
  }
  return result;
}

