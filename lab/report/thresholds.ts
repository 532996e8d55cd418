// moved to lab/results/thresholds.ts: kept until callers switch
export { evaluateThresholds, formatThresholds, scenarioThresholdChecks, type ThresholdCheck } from '../results/thresholds.ts';
