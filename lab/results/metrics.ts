import type { Stats } from '../measure/stats.ts';
import type { IterationResult } from './schema.ts';

export type MetricUnit = 'ms' | 'count';

export interface Metric {
  readonly key: string;
  /** How the console names it. */
  readonly label: string;
  readonly unit: MetricUnit;
  /** The figure of one iteration; null when it was not measured. */
  readonly get: (i: IterationResult) => number | null;
}

/** The metrics every report shows, in display order. Lower is better for all of them. */
export const metrics = [
  { key: 'durationMs', label: 'duration', unit: 'ms', get: (i: IterationResult) => i.durationMs },
  { key: 'downtimeMs', label: 'QEMU downtime', unit: 'ms', get: (i: IterationResult) => i.qemu.downtimeMs },
  { key: 'interruptionMs', label: 'ping interruption', unit: 'ms', get: (i: IterationResult) => i.ping.maxGapMs },
  { key: 'lostPings', label: 'lost pings', unit: 'count', get: (i: IterationResult) => i.ping.lost },
] as const satisfies readonly Metric[];

export type MetricKey = (typeof metrics)[number]['key'];

export function metricOf(key: MetricKey): Metric {
  return metrics.find((m) => m.key === key)!;
}

/** One metric over some iterations (missing figures stay null; the statistics drop them). */
export function valuesOf(iterations: readonly IterationResult[], metric: Metric): (number | null)[] {
  return iterations.map((i) => metric.get(i));
}

/** The statistics the reports show per metric and cell, in column order (after n). */
export const statColumns = ['median', 'p90', 'p95', 'min', 'max', 'mean', 'sd'] as const satisfies readonly (keyof Stats)[];

/** Phase durations and RAM passes (lab/measure/phases.ts), shown per cell as medians. */
export const phaseMetrics = [
  { key: 'mirrorMs', label: 'mirror', unit: 'ms', get: (i: IterationResult) => i.phases?.mirrorMs ?? null },
  { key: 'precopyMs', label: 'pre-copy', unit: 'ms', get: (i: IterationResult) => i.phases?.precopyMs ?? null },
  { key: 'ramIterations', label: 'RAM passes', unit: 'count', get: (i: IterationResult) => i.phases?.ramIterations ?? null },
  { key: 'switchoverMs', label: 'switchover', unit: 'ms', get: (i: IterationResult) => i.phases?.switchoverMs ?? null },
  { key: 'resumeMs', label: 'resume', unit: 'ms', get: (i: IterationResult) => i.phases?.resumeMs ?? null },
] as const satisfies readonly Metric[];

/** What measuring cost: the harness's CPU from request to completion, ping's over its window. */
export const harnessMetrics = [
  { key: 'harnessCpuMs', label: 'harness CPU', unit: 'ms', get: (i: IterationResult) => i.harness?.cpuMs ?? null },
  { key: 'pingCpuMs', label: 'ping CPU', unit: 'ms', get: (i: IterationResult) => i.harness?.pingCpuMs ?? null },
  { key: 'windowMs', label: 'ping window', unit: 'ms', get: (i: IterationResult) => i.harness?.windowMs ?? null },
] as const satisfies readonly Metric[];

/** The share of one CPU ping used over its window (pingCpuMs / windowMs); null when either is missing. */
export function pingCpuShare(i: IterationResult): number | null {
  const cpu = i.harness?.pingCpuMs;
  const window = i.harness?.windowMs;
  return typeof cpu === 'number' && typeof window === 'number' && window > 0 ? cpu / window : null;
}
