import type { Results } from '../schema.ts';
import { fileReporter } from './reporter.ts';

/** results.json as the runner writes it: two-space indented, a final newline. */
export function toJson(results: Results): string {
  return JSON.stringify(results, null, 2) + '\n';
}

/** results.json itself (the runner writes it after every iteration; this writes it once, whole). */
export const jsonReporter = fileReporter('json', 'results.json', (results) => toJson(results));
