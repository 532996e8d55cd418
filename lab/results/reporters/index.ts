import type { Results } from '../schema.ts';
import type { ThresholdCheck } from '../thresholds.ts';
import { consoleReporter, type ConsoleOptions } from './console.ts';
import { csvReporter } from './csv.ts';
import { htmlReporter } from './html/page.ts';
import { jsonReporter } from './json.ts';
import { junitReporter } from './junit.ts';
import { markdownReporter } from './markdown.ts';
import type { Reporter } from './reporter.ts';

export type { Reporter } from './reporter.ts';

/**
 * The reporters, peers registered by name. Console follows a run live (progress bars or
 * step lines) and writes no file; the others write one file each next to results.json
 * when the run ends.
 */
export const reporters = {
  console: (opts: ConsoleOptions = { tty: false }) => consoleReporter(opts),
  json: () => jsonReporter,
  csv: () => csvReporter,
  junit: () => junitReporter,
  markdown: () => markdownReporter,
  html: () => htmlReporter,
} satisfies Record<string, () => Reporter>;

export type ReporterName = keyof typeof reporters;

/** What `migralab run` and `migralab report` write next to results.json (the runner writes results.json itself as it goes). */
export const defaultReporters: readonly ReporterName[] = ['csv', 'junit', 'markdown'];

/** The files of the default reporters. */
export const exportFiles = { csv: csvReporter.file, junit: junitReporter.file, markdown: markdownReporter.file } as const;

/** Runs the onRunEnd hook of every reporter named, in order; returns the files they wrote. */
export async function writeReports(dir: string, results: Results, checks: ThresholdCheck[], names: readonly ReporterName[] = defaultReporters): Promise<string[]> {
  const files: string[] = [];
  for (const name of names) files.push(...((await reporters[name]().onRunEnd?.(dir, results, checks)) ?? []));
  return files;
}
