import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunEvents } from '../../runner/run.ts';
import type { Results } from '../schema.ts';
import type { ThresholdCheck } from '../thresholds.ts';

/**
 * A reporter: a name and the lifecycle hooks it cares about. The live hooks of a run
 * (step, iterationStart, progress, iterationEnd) are the runner's events; onRunEnd is
 * called once results.json is final (by `migralab run`) or read again (by `migralab
 * report`), and returns the files it wrote.
 */
export interface Reporter extends RunEvents {
  readonly name: string;
  onRunEnd?(dir: string, results: Results, checks: ThresholdCheck[]): Promise<string[]>;
}

/** A reporter that writes one file next to results.json. */
export function fileReporter(name: string, file: string, render: (results: Results, checks: ThresholdCheck[], dir: string) => string): Reporter & { file: string } {
  return {
    name,
    file,
    async onRunEnd(dir, results, checks) {
      const path = join(dir, file);
      await writeFile(path, render(results, checks, dir));
      return [path];
    },
  };
}
