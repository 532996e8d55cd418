import type { Scenario } from '../config/scenario.ts';
import { scenarioOf, type Results } from './schema.ts';
import { groups, type CellGroup } from './cells.ts';
import { formatPercent, formatValue } from './format.ts';
import { metricOf, type MetricKey } from './metrics.ts';

export interface ThresholdCheck {
  /** e.g. `block, link.rate=400Mbit: ping interruption p95 <= 500 ms` (the cell's label first; the strategy without matrix axes) */
  name: string;
  strategy: string;
  /** The matrix cell's label (the strategy for a scenario without axes). */
  cell: string;
  /** A metric key of lab/results/metrics.ts, or `failureRate`. */
  metric: string;
  /** `max`, `p95`, `p90`, `median`, or `rate` for the failure rate. */
  statistic: string;
  limit: number;
  /** null when there was nothing to measure. */
  observed: number | null;
  held: boolean;
  reason: string;
}

type Thresholds = NonNullable<Scenario['thresholds']>;
type Statistic = Thresholds['statistic'];

/** Threshold field → the metric it limits, in the order checks are listed. */
const limits = [
  ['maxInterruptionMs', 'interruptionMs'],
  ['maxDurationMs', 'durationMs'],
  ['maxDowntimeMs', 'downtimeMs'],
] as const satisfies readonly (readonly [keyof Thresholds, MetricKey])[];

const plural = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
const percent = (r: number) => formatPercent(r, 1);

function metricCheck(g: CellGroup, key: MetricKey, statistic: Statistic, limit: number): ThresholdCheck {
  const m = metricOf(key);
  const name = `${g.label}: ${m.label} ${statistic} <= ${limit}${m.unit === 'ms' ? ' ms' : ''}`;
  const base = { name, strategy: g.strategy, cell: g.label, metric: key, statistic, limit };
  if (g.ok.length === 0) {
    const n = g.iterations.length;
    const why = n === 0 ? 'no iteration ran' : n === 1 ? 'the only iteration failed' : `all ${n} iterations failed`;
    return { ...base, observed: null, held: false, reason: `nothing to measure: ${why}` };
  }
  const s = g.stats[key];
  // Rounded to a nanosecond, so the interpolation of a percentile (954.9999999999999
  // for 955) cannot flip a verdict at the limit.
  const raw = s[statistic];
  const observed = raw === undefined ? undefined : Math.round(raw * 1e6) / 1e6;
  if (observed === undefined)
    return { ...base, observed: null, held: false, reason: `nothing to measure: no ${m.label} recorded in ${plural(g.ok.length, 'successful iteration')}` };
  const over = `over ${s.n === g.ok.length ? '' : `${s.n} of `}${plural(g.ok.length, 'successful iteration')}`;
  return { ...base, observed, held: observed <= limit, reason: `observed ${statistic} ${formatValue(observed, m.unit)} ${over}` };
}

function failureRateCheck(g: CellGroup, limit: number): ThresholdCheck {
  const base = { name: `${g.label}: failure rate <= ${percent(limit)}`, strategy: g.strategy, cell: g.label, metric: 'failureRate', statistic: 'rate', limit };
  const all = g.iterations.length;
  if (all === 0) return { ...base, observed: null, held: false, reason: 'nothing to measure: no iteration ran' };
  const failed = all - g.ok.length;
  const observed = failed / all;
  return { ...base, observed, held: observed <= limit, reason: `observed ${percent(observed)} (${failed}/${all} failed)` };
}

/**
 * One check per threshold given × matrix cell in the results, in cell order (without
 * matrix axes a cell is a strategy; a strategy the scenario asked for that never ran is
 * checked too, and then does not hold). Metric limits apply to the chosen statistic
 * over successful iterations; a failure does not count there, only in maxFailureRate.
 */
export function evaluateThresholds(results: Results, thresholds: Scenario['thresholds']): ThresholdCheck[] {
  if (!thresholds) return [];
  const statistic: Statistic = thresholds.statistic ?? 'max';
  const checks: ThresholdCheck[] = [];
  for (const g of groups(results)) {
    for (const [field, key] of limits) {
      const limit = thresholds[field];
      if (limit !== undefined) checks.push(metricCheck(g, key, statistic, limit));
    }
    if (thresholds.maxFailureRate !== undefined) checks.push(failureRateCheck(g, thresholds.maxFailureRate));
  }
  return checks;
}

/** One line per check, `PASS <name>: observed …` or `FAIL …`; empty for no checks. */
export function formatThresholds(checks: readonly ThresholdCheck[]): string {
  return checks.map((c) => `${c.held ? 'PASS' : 'FAIL'} ${c.name}: ${c.reason}`).join('\n');
}

/**
 * The checks of the thresholds that the run's own scenario declared (scenarioOf(results));
 * none for an interrupted run, whose figures are partial, or a scenario without thresholds.
 */
export function scenarioThresholdChecks(results: Results): ThresholdCheck[] {
  const thresholds = scenarioOf(results)?.thresholds;
  if (!thresholds || results.interrupted) return [];
  return evaluateThresholds(results, thresholds);
}
