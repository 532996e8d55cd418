import type { Strategy } from '../../../config/scenario.ts';
import { largestGap as largestOf, type Gap } from '../../../measure/gaps.ts';
import { cellGroups, cellOf, groups } from '../../cells.ts';
import { metricOf, type MetricKey, type MetricUnit } from '../../metrics.ts';
import type { IterationResult, Results } from '../../schema.ts';

export type { Gap };

/**
 * The view model of the HTML report: what the tables are rendered from and what the page
 * script reads from the embedded JSON (per run: its results, one distribution per
 * metric, one timeline per iteration with its largest gap and x range).
 */

export interface ReportRun {
  /** The results directory (or file) the run was read from; shown as the run's name. */
  path: string;
  results: Results;
}

/** The metrics drawn as distributions (every repetition a point). */
export const distributionMetrics = ['durationMs', 'downtimeMs', 'interruptionMs'] as const satisfies readonly MetricKey[];

/** Seed of the bootstrap intervals, so a report is reproducible. */
export const BOOTSTRAP_SEED = 1;

export interface DistributionPoint {
  index: number;
  repetition: number;
  value: number;
}

export interface Distribution {
  metric: MetricKey;
  label: string;
  unit: MetricUnit;
  /** One x category per matrix cell, in cell order. */
  cells: { label: string; strategy: Strategy; group: string; median: number | null; points: DistributionPoint[]; failed: number; failedAsExpected: number }[];
}

export interface TimelineView {
  index: number;
  /** The x range of this timeline: shared by the cells of its group (which differ only by strategy), so they compare by eye. */
  range: { min: number; max: number } | null;
  strategy: Strategy;
  /** The matrix cell's label (the strategy without axes). */
  cell: string;
  repetition: number;
  ok: boolean;
  gap: Gap | null;
}

/** What the page script reads from the `<script type="application/json" id="data">` block. */
export interface ReportData {
  title: string;
  generatedAt: string;
  runs: {
    id: string;
    path: string;
    results: Results;
    distributions: Distribution[];
    timelines: TimelineView[];
    /** One x range covering every timeline of the run. */
    timelineRange: { min: number; max: number } | null;
  }[];
}

/** The largest gap between consecutive ping replies of an iteration's timeline (what ping.maxGapMs measures), in ms after the request. */
export function largestGap(timeline: IterationResult['timeline']): Gap | null {
  return (timeline && largestOf(timeline.ping.map(([offset]) => offset))) ?? null;
}

export function distributions(results: Results): Distribution[] {
  const gs = groups(results);
  return distributionMetrics.map((key) => {
    const m = metricOf(key);
    return {
      metric: key,
      label: m.label,
      unit: m.unit,
      cells: gs.map((g) => {
        const points: DistributionPoint[] = [];
        for (const it of g.ok) {
          const value = m.get(it);
          if (typeof value === 'number' && !Number.isNaN(value)) points.push({ index: it.index, repetition: it.repetition, value });
        }
        const failedAsExpected = g.iterations.filter((it) => !it.ok && it.expected?.met).length;
        return { label: g.label, strategy: g.strategy, group: g.group, median: g.stats[key].median ?? null, points, failed: g.failed - failedAsExpected, failedAsExpected };
      }),
    };
  });
}

function timelineRange(iterations: readonly IterationResult[]): { min: number; max: number } | null {
  let min = Infinity;
  let max = -Infinity;
  for (const it of iterations) {
    if (!it.timeline) continue;
    const m = it.timeline.marks;
    const xs = [0, ...it.timeline.ping.map(([o]) => o), ...(it.timeline.samples ?? []).map((s) => s.t), m.mirrorReady, m.ramStart, m.postcopyStart, m.completed, m.destRunning];
    for (const x of xs) if (typeof x === 'number') ((min = Math.min(min, x)), (max = Math.max(max, x)));
  }
  return min === Infinity ? null : { min: Math.floor(min / 50) * 50, max: Math.ceil(max / 50) * 50 };
}

/** Per group of cells (which differ only by strategy), the x range of their timelines. */
function groupRanges(results: Results): Map<string, { min: number; max: number } | null> {
  return new Map(cellGroups(results).map(({ group, cells }) => [group, timelineRange(cells.flatMap((c) => c.iterations))]));
}

export function reportData(runs: readonly ReportRun[], title: string, generatedAt: Date): ReportData {
  return {
    title,
    generatedAt: generatedAt.toISOString(),
    runs: runs.map((r, k) => {
      const ranges = groupRanges(r.results);
      return {
        id: `run-${k}`,
        path: r.path,
        results: r.results,
        distributions: distributions(r.results),
        timelines: r.results.iterations
          .filter((it) => it.timeline)
          .map((it) => ({
            index: it.index,
            range: ranges.get(cellOf(it).group) ?? null,
            strategy: it.strategy,
            cell: cellOf(it).label,
            repetition: it.repetition,
            ok: it.ok,
            gap: largestGap(it.timeline),
          })),
        timelineRange: timelineRange(r.results.iterations),
      };
    }),
  };
}
