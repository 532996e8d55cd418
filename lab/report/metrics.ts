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

/** The matrix cell of an iteration; results written before cells existed: one cell per strategy, labelled with it. */
export function cellOf(i: IterationResult): { label: string; group: string } {
  return i.cell ? { label: i.cell.label, group: i.cell.group } : { label: i.strategy, group: '' };
}

/** Whether the run had matrix axes (some cell's label says more than its strategy): reports then say "cell" where they said "strategy". */
export function hasAxes(results: Results): boolean {
  return results.iterations.some((i) => cellOf(i).group !== '');
}

/** The iterations of one matrix cell (of one strategy, for results without matrix axes). */
export interface CellGroup {
  strategy: Strategy;
  /** The cell's label, e.g. `block, link.rate=400Mbit`; the strategy when the scenario has no axes. */
  label: string;
  /** The label without the strategy: cells that differ only by strategy share it ('' without axes). */
  group: string;
  /** Every iteration of the cell, in run order. */
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

const emptyCell = (strategy: Strategy): CellGroup => ({ strategy, label: strategy, group: '', iterations: [], ok: [] });

/**
 * Iterations grouped by matrix cell, in order of first appearance. Without matrix axes
 * (every cell's group is '', or no cell recorded: results from before cells) a cell is a
 * strategy, in the scenario's strategy order, then any other in order of appearance. A
 * strategy the scenario asked for that never ran in any cell (an interrupted run) is an
 * empty group labelled with the strategy.
 */
export function groups(results: Results): CellGroup[] {
  const planned = plannedStrategies(results) ?? [];
  const byLabel = new Map<string, CellGroup>();
  if (!hasAxes(results)) for (const s of planned) byLabel.set(s, emptyCell(s));
  for (const i of results.iterations) {
    const { label, group } = cellOf(i);
    let g = byLabel.get(label);
    if (!g) byLabel.set(label, (g = { strategy: i.strategy, label, group, iterations: [], ok: [] }));
    g.iterations.push(i);
    if (i.ok) g.ok.push(i);
  }
  const all = [...byLabel.values()];
  for (const s of planned) if (!all.some((g) => g.strategy === s)) all.push(emptyCell(s));
  return all;
}

/** The groups of cells that differ only by strategy, in order of first appearance, each with its cells in order. */
export function cellGroups(results: Results): { group: string; cells: CellGroup[] }[] {
  const out: { group: string; cells: CellGroup[] }[] = [];
  for (const g of groups(results)) {
    const entry = out.find((e) => e.group === g.group);
    if (entry) entry.cells.push(g);
    else out.push({ group: g.group, cells: [g] });
  }
  return out;
}

/** The statistics of one metric list over the successful iterations of a cell. */
export function statsOf<M extends Metric>(ok: readonly IterationResult[], list: readonly M[]): Record<M['key'], Stats> {
  return Object.fromEntries(list.map((m) => [m.key, stats(valuesOf(ok, m))])) as Record<M['key'], Stats>;
}

export interface CellStats {
  strategy: Strategy;
  label: string;
  group: string;
  iterations: number;
  failed: number;
  /** Per metric, over successful iterations. */
  stats: Record<MetricKey, Stats>;
}

/** Per cell (see groups()): counts, and every metric's statistics over the successful iterations. */
export function strategyStats(results: Results): CellStats[] {
  return groups(results).map((g) => ({
    strategy: g.strategy,
    label: g.label,
    group: g.group,
    iterations: g.iterations.length,
    failed: g.iterations.length - g.ok.length,
    stats: statsOf(g.ok, metrics),
  }));
}

export type Differences = Record<MetricKey, DiffInterval | undefined>;

/**
 * Per metric, median(block) - median(shared) over the successful iterations given, with
 * its 95% bootstrap interval (and the interval's warning when a side is small);
 * undefined when either side has no value for the metric.
 */
export function medianDifferences(block: readonly IterationResult[], shared: readonly IterationResult[], seed = 1): Differences {
  return Object.fromEntries(metrics.map((m) => [m.key, bootstrapMedianDiff(valuesOf(block, m), valuesOf(shared, m), { seed })])) as Differences;
}

export interface GroupDifference {
  /** The cells' label without the strategy ('' without matrix axes). */
  group: string;
  /** The labels of the two cells compared. */
  block: string;
  shared: string;
  diffs: Differences;
}

/**
 * block − shared per group of cells that differ only by strategy: one entry per group
 * holding both a block and a shared cell (even one with no successful iteration, whose
 * differences are then undefined), in order of first appearance.
 */
export function blockMinusShared(results: Results, seed = 1): GroupDifference[] {
  const out: GroupDifference[] = [];
  for (const { group, cells } of cellGroups(results)) {
    const block = cells.find((c) => c.strategy === 'block');
    const shared = cells.find((c) => c.strategy === 'shared');
    if (block && shared) out.push({ group, block: block.label, shared: shared.label, diffs: medianDifferences(block.ok, shared.ok, seed) });
  }
  return out;
}

/** `412.3 ms`, `3 pings`, or `-` for nothing measured. */
export function formatValue(value: number | null | undefined, unit: MetricUnit): string {
  if (value === null || value === undefined || Number.isNaN(value)) return '-';
  return unit === 'ms' ? `${value.toFixed(1)} ms` : `${Math.round(value * 10) / 10}`;
}
