import type { MetricUnit } from './metrics.ts';

/** What the Markdown and HTML reports write for a figure that is not there. */
export const DASH = '–';

export interface NumberStyle {
  /** What stands for no figure (undefined, null, NaN, ±Infinity); `–` unless told. */
  dash?: string;
  /** Milliseconds carry their unit: `412.3 ms`. */
  withUnit?: boolean;
  /** Milliseconds below 10 to two decimals (`4.27 ms`): one iteration's figures, where small ones matter. */
  fine?: boolean;
}

/** The console's style: `-` for nothing, milliseconds with their unit. */
export const consoleStyle: NumberStyle = { dash: '-', withUnit: true };

/**
 * The one number formatter of every report. Milliseconds to one decimal (see `fine`),
 * counts as whole numbers, to one decimal when a statistic of counts is not whole; never
 * `-0.0`; `signed` puts a `+` before a positive figure (one that does not read as zero).
 */
export function formatNumber(v: number | null | undefined, unit: MetricUnit, signed = false, style: NumberStyle = {}): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return style.dash ?? DASH;
  let s = unit === 'ms' ? v.toFixed(style.fine && v < 10 ? 2 : 1) : Number.isInteger(v) ? String(v) : v.toFixed(1);
  if (/^-0(\.0+)?$/.test(s)) s = s.slice(1); // no "-0.0" for a tiny negative
  if (signed && !s.startsWith('-') && Number(s) !== 0) s = `+${s}`;
  return style.withUnit && unit === 'ms' ? `${s} ms` : s;
}

/** `412.3 ms`, `3`, or `-` for nothing measured: the console's style. */
export function formatValue(value: number | null | undefined, unit: MetricUnit): string {
  return formatNumber(value, unit, false, consoleStyle);
}

/** What a column or row header adds to a metric's label: ` (ms)` for milliseconds. */
export function unitSuffix(unit: MetricUnit): string {
  return unit === 'ms' ? ' (ms)' : '';
}

/** A share (0.25) as a percentage to `digits` decimals: shortest (`25%`, `12.5%`), or `fixed` for a column of figures (`25.0%`). */
export function formatPercent(share: number, digits = 0, fixed = false): string {
  return `${fixed ? (share * 100).toFixed(digits) : Math.round(share * 10 ** (2 + digits)) / 10 ** digits}%`;
}

/** Whether the guest's disk and RAM checks held, in words ("disk intact, RAM NOT intact"). */
export function integrityText(v: { diskIntact: boolean; ramIntact?: boolean | null }): string {
  return `disk ${v.diskIntact ? 'intact' : 'NOT intact'}, RAM ${v.ramIntact == null ? 'not checked' : v.ramIntact ? 'intact' : 'NOT intact'}`;
}
