// moved to lab/results/metrics.ts, lab/results/cells.ts and lab/results/format.ts (formatValue): kept until callers switch
export { harnessMetrics, metricOf, metrics, phaseMetrics, pingCpuShare, valuesOf, type Metric, type MetricKey, type MetricUnit } from '../results/metrics.ts';
export {
  blockMinusShared,
  cellGroups,
  cellOf,
  groups,
  hasAxes,
  medianDifferences,
  statsOf,
  strategyStats,
  type CellGroup,
  type CellStats,
  type Differences,
  type GroupDifference,
} from '../results/cells.ts';
export { formatValue } from '../results/format.ts';
