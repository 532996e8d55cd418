// moved to lab/results/schema.ts and lab/results/cells.ts: kept until callers switch
export {
  RESULTS_SCHEMA,
  RESULTS_VERSION,
  environmentSchema,
  diskLocationSchema,
  iterationSchema,
  strategySummarySchema,
  resultsSchema,
  defaultResultsDir,
  type DiskLocation,
  type IterationResult,
  type StrategySummary,
  type Results,
} from '../results/schema.ts';
export { summarize } from '../results/cells.ts';
