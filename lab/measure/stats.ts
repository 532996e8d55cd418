/**
 * Small pure statistics over measurements. Missing values (undefined, null, NaN) are
 * ignored, never treated as zero; an empty input gives undefined, never a made-up 0.
 */

export type MaybeNumber = number | null | undefined;

export interface Description {
  /** how many values were used (after dropping undefined/null/NaN) */
  n: number;
  median: number | undefined;
  min: number | undefined;
  max: number | undefined;
}

/** The values that count: numbers that are not NaN. */
export function present(values: readonly MaybeNumber[]): number[] {
  return values.filter((v): v is number => typeof v === 'number' && !Number.isNaN(v));
}

export function median(values: readonly MaybeNumber[]): number | undefined {
  const v = present(values).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const mid = v.length >> 1;
  return v.length % 2 === 1 ? v[mid] : ((v[mid - 1] as number) + (v[mid] as number)) / 2;
}

export function min(values: readonly MaybeNumber[]): number | undefined {
  let m: number | undefined;
  for (const v of present(values)) if (m === undefined || v < m) m = v;
  return m;
}

export function max(values: readonly MaybeNumber[]): number | undefined {
  let m: number | undefined;
  for (const v of present(values)) if (m === undefined || v > m) m = v;
  return m;
}

export function describe(values: readonly MaybeNumber[]): Description {
  const v = present(values);
  return { n: v.length, median: median(v), min: min(v), max: max(v) };
}

/** a / b, or undefined when either is missing or NaN, or b is 0. */
export function ratio(a: MaybeNumber, b: MaybeNumber): number | undefined {
  if (typeof a !== 'number' || typeof b !== 'number' || Number.isNaN(a) || Number.isNaN(b) || b === 0) return undefined;
  return a / b;
}
