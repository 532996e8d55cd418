import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Results } from '../runner/results.ts';
import type { ThresholdCheck } from './thresholds.ts';
import { toCsv } from './csv.ts';
import { toJUnit } from './junit.ts';
import { toMarkdown } from './markdown.ts';

export const exportFiles = { csv: 'results.csv', junit: 'junit.xml', markdown: 'summary.md' } as const;

/** Writes the CSV, JUnit and Markdown exports next to results.json; returns their paths. */
export async function writeExports(dir: string, results: Results, checks: ThresholdCheck[]): Promise<string[]> {
  const out = [
    [join(dir, exportFiles.csv), toCsv(results)],
    [join(dir, exportFiles.junit), toJUnit(results, checks)],
    [join(dir, exportFiles.markdown), toMarkdown(results, checks)],
  ] as const;
  for (const [file, text] of out) await writeFile(file, text);
  return out.map(([f]) => f);
}
