import type { Strategy } from '../config/scenario.ts';
import { bootstrapMedianDiff, type DiffInterval } from '../measure/stats.ts';
import { groups, type CellGroup } from './cells.ts';
import { formatNumber, formatValue, consoleStyle } from './format.ts';
import { metrics, valuesOf, type MetricKey, type MetricUnit } from './metrics.ts';
import { recordedScenario, type Results } from './schema.ts';

/**
 * `regression`/`improvement`: the median moved by more than the tolerance and the 95%
 * interval of the change excludes 0. `unmeasured`: one side has no value to compare.
 */
export type Verdict = 'regression' | 'improvement' | 'same' | 'unmeasured';

export interface MetricComparison {
  /** The matrix cell's label (the strategy for a scenario without axes). */
  cell: string;
  strategy: Strategy;
  metric: MetricKey;
  label: string;
  unit: MetricUnit;
  baseline: { n: number; median: number | undefined };
  current: { n: number; median: number | undefined };
  /** current median - baseline median */
  change: number | undefined;
  /** change as a percentage of the baseline median; undefined when that is 0 or missing */
  changePct: number | undefined;
  /** 95% bootstrap interval of median(current) - median(baseline) */
  interval: DiffInterval | undefined;
  verdict: Verdict;
  /** Set when a group is too small for the interval to mean much. */
  warning?: string;
}

export interface RunIdentity {
  scenario: string;
  lab: string;
  startedAt: string;
}

export interface CellRuns {
  /** The matrix cell's label (the strategy for a scenario without axes). */
  cell: string;
  strategy: Strategy;
  baseline: { iterations: number; failed: number };
  current: { iterations: number; failed: number };
}

export interface Comparison {
  baseline: RunIdentity;
  current: RunIdentity;
  tolerancePct: number;
  seed: number;
  /** Matrix cells (strategies, without axes) that ran in both, matched by label, in the current run's order. */
  cells: CellRuns[];
  /** Per compared cell, per metric. */
  rows: MetricComparison[];
  /** One message per differing environment field, naming both values. */
  environmentWarnings: string[];
  /** Other things that make the comparison weaker: cells on one side only, more failures, other scenario settings. */
  warnings: string[];
  regressions: number;
  improvements: number;
}

const environmentFields = [
  ['accelerator', 'accelerator'],
  ['qemuVersion', 'QEMU version'],
  ['cpuModel', 'CPU model'],
  ['kernel', 'kernel'],
  ['nfsClient', 'NFS client'],
] as const satisfies readonly (readonly [keyof Results['environment'], string])[];

/** Scenario fields that do not change what is measured. */
const scenarioFieldsIgnored = new Set(['name', 'description', 'thresholds', 'compare', 'repetitions', 'timeoutSeconds']);

function identity(r: Results): RunIdentity {
  return { scenario: r.scenario.name, lab: r.lab, startedAt: r.startedAt };
}

export function environmentDifferences(baseline: Results['environment'], current: Results['environment']): string[] {
  return environmentFields
    .filter(([field]) => baseline[field] !== current[field])
    .map(([field, label]) => `${label} differs: baseline ${baseline[field]}, current ${current[field]}`);
}

function scenarioDifferences(baseline: Results, current: Results): string[] {
  const out: string[] = [];
  if (baseline.scenario.name !== current.scenario.name) out.push(`scenario differs: baseline ${baseline.scenario.name}, current ${current.scenario.name}`);
  const b = recordedScenario(baseline);
  const c = recordedScenario(current);
  if (typeof b === 'object' && b !== null && typeof c === 'object' && c !== null) {
    const keys = [...new Set([...Object.keys(b), ...Object.keys(c)])].filter((k) => !scenarioFieldsIgnored.has(k));
    const differ = keys.filter((k) => JSON.stringify((b as Record<string, unknown>)[k]) !== JSON.stringify((c as Record<string, unknown>)[k]));
    if (differ.length > 0) out.push(`scenario settings differ: ${differ.join(', ')}`);
  }
  return out;
}

function compareMetric(b: CellGroup, c: CellGroup, m: (typeof metrics)[number], tolerancePct: number, seed: number): MetricComparison {
  const bm = b.stats[m.key].median;
  const cm = c.stats[m.key].median;
  const interval = bootstrapMedianDiff(valuesOf(c.ok, m), valuesOf(b.ok, m), { seed });
  const change = bm !== undefined && cm !== undefined ? cm - bm : undefined;
  const changePct = change !== undefined && bm !== undefined && bm !== 0 ? (change / Math.abs(bm)) * 100 : undefined;
  let verdict: Verdict = 'unmeasured';
  if (change !== undefined && bm !== undefined && interval) {
    // Every metric is better lower; the tolerance is relative to the baseline median
    // (so with a baseline median of 0 any change beyond the interval counts).
    const allowed = (tolerancePct / 100) * Math.abs(bm);
    if (change > allowed && interval.low > 0) verdict = 'regression';
    else if (change < -allowed && interval.high < 0) verdict = 'improvement';
    else verdict = 'same';
  }
  const row: MetricComparison = {
    cell: c.label,
    strategy: c.strategy,
    metric: m.key,
    label: m.label,
    unit: m.unit,
    baseline: { n: b.stats[m.key].n, median: bm },
    current: { n: c.stats[m.key].n, median: cm },
    change,
    changePct,
    interval,
    verdict,
  };
  if (interval?.warning) row.warning = interval.warning;
  return row;
}

/**
 * Per matrix cell in both runs (matched by label; without matrix axes a cell is a
 * strategy) and per metric: the change of the median over successful iterations, its
 * 95% bootstrap interval (current - baseline), and a verdict against `tolerancePct`
 * percent of the baseline median. A cell in one run only is a warning, not compared.
 */
export function compareResults(baseline: Results, current: Results, opts: { tolerancePct: number; seed?: number }): Comparison {
  const seed = opts.seed ?? 1;
  const bGroups = groups(baseline).filter((g) => g.iterations.length > 0);
  const cGroups = groups(current).filter((g) => g.iterations.length > 0);
  const warnings = scenarioDifferences(baseline, current);
  for (const g of bGroups) if (!cGroups.some((c) => c.label === g.label)) warnings.push(`${g.label}: only in the baseline, not compared`);
  for (const g of cGroups) if (!bGroups.some((b) => b.label === g.label)) warnings.push(`${g.label}: only in the current run, not compared`);

  const cells: CellRuns[] = [];
  const rows: MetricComparison[] = [];
  for (const c of cGroups) {
    const b = bGroups.find((g) => g.label === c.label);
    if (!b) continue;
    const runs: CellRuns = {
      cell: c.label,
      strategy: c.strategy,
      baseline: { iterations: b.iterations.length, failed: b.iterations.length - b.ok.length },
      current: { iterations: c.iterations.length, failed: c.iterations.length - c.ok.length },
    };
    cells.push(runs);
    if (runs.current.failed / runs.current.iterations > runs.baseline.failed / runs.baseline.iterations)
      warnings.push(
        `${c.label}: ${runs.current.failed}/${runs.current.iterations} iterations failed in the current run (baseline ${runs.baseline.failed}/${runs.baseline.iterations})`,
      );
    for (const m of metrics) rows.push(compareMetric(b, c, m, opts.tolerancePct, seed));
  }
  return {
    baseline: identity(baseline),
    current: identity(current),
    tolerancePct: opts.tolerancePct,
    seed,
    cells,
    rows,
    environmentWarnings: environmentDifferences(baseline.environment, current.environment),
    warnings,
    regressions: rows.filter((r) => r.verdict === 'regression').length,
    improvements: rows.filter((r) => r.verdict === 'improvement').length,
  };
}

function changeCell(r: MetricComparison): string {
  if (r.change === undefined) return '-';
  const pct = r.changePct === undefined ? '' : ` (${r.changePct > 0 ? '+' : ''}${r.changePct.toFixed(1)}%)`;
  return `${formatNumber(r.change, r.unit, true, consoleStyle)}${pct}`;
}

function intervalCell(r: MetricComparison): string {
  if (!r.interval) return '-';
  const f = (v: number) => formatNumber(v, r.unit, true, { dash: '-' });
  return `[${f(r.interval.low)}, ${f(r.interval.high)}]${r.warning ? ' *' : ''}`;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) => r.map((v, c) => v.padEnd(widths[c]!)).join('  ').trimEnd());
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return lines;
}

/** The comparison as a console table, followed by warnings and the verdict count. */
export function formatComparison(c: Comparison): string {
  const lines = [
    `baseline: ${c.baseline.scenario} on ${c.baseline.lab}, started ${c.baseline.startedAt}`,
    `current:  ${c.current.scenario} on ${c.current.lab}, started ${c.current.startedAt}`,
    '',
  ];
  if (c.rows.length > 0) {
    // "cell" once a matrix cell says more than its strategy
    const header = [c.rows.every((r) => r.cell === r.strategy) ? 'strategy' : 'cell', 'metric', 'ok/runs', 'baseline', 'current', 'change', '95% interval', 'verdict'];
    const body = c.rows.map((r) => {
      const runs = c.cells.find((s) => s.cell === r.cell)!;
      const ok = (x: { iterations: number; failed: number }) => `${x.iterations - x.failed}/${x.iterations}`;
      return [
        r.cell,
        r.label,
        `${ok(runs.baseline)} -> ${ok(runs.current)}`,
        formatValue(r.baseline.median, r.unit),
        formatValue(r.current.median, r.unit),
        changeCell(r),
        intervalCell(r),
        r.verdict === 'same' ? 'same' : r.verdict.toUpperCase(),
      ];
    });
    lines.push(...table([header, ...body]));
    lines.push(`medians over successful iterations; change = current - baseline; tolerance ${c.tolerancePct}% of the baseline median`);
    const small = [...new Set(c.rows.filter((r) => r.warning).map((r) => `${r.cell}: ${r.warning}`))];
    for (const w of small) lines.push(`* ${w}`);
  } else lines.push('no cell (strategy) ran in both runs: nothing to compare');
  for (const w of c.environmentWarnings) lines.push(`warning: environment: ${w}`);
  for (const w of c.warnings) lines.push(`warning: ${w}`);
  lines.push('', c.regressions === 0 ? `no regression (${c.improvements} improved)` : `${c.regressions} regression${c.regressions === 1 ? '' : 's'} (${c.improvements} improved)`);
  return lines.join('\n');
}
