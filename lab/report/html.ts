// moved to lab/results/reporters/html/ (view.ts, escape.ts, page.ts) and lab/results/metrics.ts (statColumns): kept until callers switch
export {
  BOOTSTRAP_SEED,
  distributionMetrics,
  distributions,
  largestGap,
  reportData,
  type Distribution,
  type DistributionPoint,
  type Gap,
  type ReportData,
  type ReportRun,
  type TimelineView,
} from '../results/reporters/html/view.ts';
export { esc, jsonForScript, scriptText } from '../results/reporters/html/escape.ts';
export { chartJsSource, renderHtml, writeReport } from '../results/reporters/html/page.ts';
export { statColumns } from '../results/metrics.ts';
