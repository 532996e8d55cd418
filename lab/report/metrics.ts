import { strategies, type Strategy } from '../config/scenario.ts';
import type { IterationResult, Results } from '../runner/results.ts';
import { bootstrapMedianDiff, stats, type DiffInterval, type Stats } from '../measure/stats.ts';

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

export interface StrategyGroup {
  strategy: Strategy;
  /** Every iteration of the strategy, in run order. */
  iterations: IterationResult[];
  /** The successful ones: the only ones measured. */
  ok: IterationResult[];
}

/** The strategies the scenario asked for, as recorded in results.json (undefined when absent or unreadable). */
function plannedStrategies(results: Results): Strategy[] | undefined {
  const asRun = results.scenario.asRun;
  if (typeof asRun !== 'object' || asRun === null || !('strategies' in asRun) || !Array.isArray(asRun.strategies)) return undefined;
  return asRun.strategies.filter((s): s is Strategy => (strategies as readonly unknown[]).includes(s));
}

/**
 * Iterations grouped by strategy, in the scenario's strategy order (then any other
 * strategy in order of appearance). A strategy the scenario asked for but that never
 * ran (an interrupted run) is a group with no iterations.
 */
export function groups(results: Results): StrategyGroup[] {
  const order: Strategy[] = [...new Set([...(plannedStrategies(results) ?? []), ...results.iterations.map((i) => i.strategy)])];
  return order.map((strategy) => {
    const iterations = results.iterations.filter((i) => i.strategy === strategy);
    return { strategy, iterations, ok: iterations.filter((i) => i.ok) };
  });
}

export interface StrategyStats {
  strategy: Strategy;
  iterations: number;
  failed: number;
  /** Per metric, over successful iterations. */
  stats: Record<MetricKey, Stats>;
}

export function strategyStats(results: Results): StrategyStats[] {
  return groups(results).map((g) => ({
    strategy: g.strategy,
    iterations: g.iterations.length,
    failed: g.iterations.length - g.ok.length,
    stats: Object.fromEntries(metrics.map((m) => [m.key, stats(valuesOf(g.ok, m))])) as Record<MetricKey, Stats>,
  }));
}

/**
 * Per metric, median(block) - median(shared) over successful iterations with its 95%
 * bootstrap interval (and the interval's warning when a group is small); undefined when
 * either strategy has no value for the metric.
 */
export function blockMinusShared(results: Results, seed = 1): Record<MetricKey, DiffInterval | undefined> {
  const gs = groups(results);
  const block = gs.find((g) => g.strategy === 'block')?.ok ?? [];
  const shared = gs.find((g) => g.strategy === 'shared')?.ok ?? [];
  return Object.fromEntries(metrics.map((m) => [m.key, bootstrapMedianDiff(valuesOf(block, m), valuesOf(shared, m), { seed })])) as Record<
    MetricKey,
    DiffInterval | undefined
  >;
}

/** `412.3 ms`, `3 pings`, or `-` for nothing measured. */
export function formatValue(value: number | null | undefined, unit: MetricUnit): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '-';
  return unit === 'ms' ? `${value.toFixed(1)} ms` : `${Math.round(value * 10) / 10}`;
}
