import type { Strategy } from '../config/scenario.ts';
import { bootstrapMedianDiff, ratio, stats, type DiffInterval, type Stats } from '../measure/stats.ts';
import { metrics, valuesOf, type Metric, type MetricKey } from './metrics.ts';
import type { IterationResult, Results, StrategySummary } from './schema.ts';

/**
 * The one grouping of iterations into matrix cells, with their statistics: the console
 * summary, results.summary, the HTML and Markdown reports, compare and thresholds all
 * read cells from here. A matrix cell is a strategy and one value of every axis; without
 * axes (or in results from before cells were recorded) a cell is a strategy.
 */

/** The matrix cell of an iteration; results written before cells existed: one cell per strategy, labelled with it. */
export function cellOf(i: IterationResult): { label: string; group: string } {
  return i.cell ? { label: i.cell.label, group: i.cell.group } : { label: i.strategy, group: '' };
}

/** Whether the run had matrix axes (some cell's label says more than its strategy): reports then say "cell" where they said "strategy". */
export function hasAxes(results: Results): boolean {
  return results.iterations.some((i) => cellOf(i).group !== '');
}

/** The iterations of one matrix cell (of one strategy, for results without matrix axes), and their statistics. */
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
  failed: number;
  /** Per metric, over the successful iterations. */
  stats: Record<MetricKey, Stats>;
}

/** The statistics of one metric list over the successful iterations of a cell. */
export function statsOf<M extends Metric>(ok: readonly IterationResult[], list: readonly M[]): Record<M['key'], Stats> {
  return Object.fromEntries(list.map((m) => [m.key, stats(valuesOf(ok, m))])) as Record<M['key'], Stats>;
}

function cell(strategy: Strategy, label: string, group: string, iterations: IterationResult[]): CellGroup {
  const ok = iterations.filter((i) => i.ok);
  return { strategy, label, group, iterations, ok, failed: iterations.length - ok.length, stats: statsOf(ok, metrics) };
}

/**
 * Iterations grouped by cell label in order of first appearance, then, for every planned
 * strategy that ran in no cell (an interrupted run), an empty cell labelled with it.
 */
function byCell(iterations: readonly IterationResult[], planned: readonly Strategy[]): CellGroup[] {
  const byLabel = new Map<string, { strategy: Strategy; group: string; iterations: IterationResult[] }>();
  for (const i of iterations) {
    const { label, group } = cellOf(i);
    const entry = byLabel.get(label) ?? { strategy: i.strategy, group, iterations: [] };
    entry.iterations.push(i);
    byLabel.set(label, entry);
  }
  const cells = [...byLabel].map(([label, e]) => cell(e.strategy, label, e.group, e.iterations));
  for (const s of planned) if (!cells.some((c) => c.strategy === s)) cells.push(cell(s, s, '', []));
  return cells;
}

/**
 * The cells of a run, in order of first appearance. Without matrix axes a cell is a
 * strategy, in the scenario's strategy order, then any other in order of appearance. A
 * strategy the scenario asked for that never ran in any cell (an interrupted run) is an
 * empty cell labelled with the strategy.
 */
export function groups(results: Results): CellGroup[] {
  const planned = results.scenario.asRun.strategies ?? [];
  const cells = byCell(results.iterations, planned);
  if (hasAxes(results)) return cells;
  const rank = (c: CellGroup) => (planned.includes(c.strategy) ? planned.indexOf(c.strategy) : planned.length);
  return cells.sort((a, b) => rank(a) - rank(b));
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

/** A cell with its counts instead of its iterations. */
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
  return groups(results).map(({ strategy, label, group, iterations, failed, stats }) => ({ strategy, label, group, iterations: iterations.length, failed, stats }));
}

const describe = ({ n, median, min, max }: Stats) => ({ n, median, min, max });

/**
 * results.summary: per cell in order of first appearance (a planned strategy that never
 * ran last, as an empty row), the median/min/max of four metrics over successful
 * iterations, and the block/shared ratios of the medians per group of cells.
 */
export function summarize(iterations: IterationResult[], strategies: readonly Strategy[]): NonNullable<Results['summary']> {
  const cells = byCell(iterations, strategies);
  const per = cells.map((c): StrategySummary => ({
    strategy: c.strategy,
    ...(c.iterations[0]?.cell ? { cell: c.label, group: c.group } : {}),
    iterations: c.iterations.length,
    failed: c.failed,
    durationMs: describe(c.stats.durationMs),
    downtimeMs: describe(c.stats.downtimeMs),
    maxGapMs: describe(c.stats.interruptionMs),
    lost: describe(c.stats.lostPings),
  }));
  const groupsSeen = [...new Set(cells.map((c) => c.group))];
  const ratiosByGroup = groupsSeen.map((group) => {
    const b = cells.find((c) => c.strategy === 'block' && c.group === group)?.stats;
    const s = cells.find((c) => c.strategy === 'shared' && c.group === group)?.stats;
    return {
      group,
      durationMs: ratio(b?.durationMs.median, s?.durationMs.median),
      downtimeMs: ratio(b?.downtimeMs.median, s?.downtimeMs.median),
      maxGapMs: ratio(b?.interruptionMs.median, s?.interruptionMs.median),
    };
  });
  const { group: _first, ...blockToSharedRatio } = ratiosByGroup[0] ?? { group: '' };
  return { strategies: per, blockToSharedRatio, ...(groupsSeen.length > 1 ? { ratiosByGroup } : {}) };
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
