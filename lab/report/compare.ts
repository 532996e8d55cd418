// moved to lab/results/compare.ts and lab/results/load.ts (loadResults): kept until callers switch
export {
  compareResults,
  environmentDifferences,
  formatComparison,
  type CellRuns,
  type Comparison,
  type MetricComparison,
  type RunIdentity,
  type Verdict,
} from '../results/compare.ts';
export { loadResults } from '../results/load.ts';
