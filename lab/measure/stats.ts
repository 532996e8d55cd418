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

/** Percentile p (0..100) with linear interpolation between closest ranks (numpy's default, R type 7). */
export function percentile(values: readonly MaybeNumber[], p: number): number | undefined {
  const v = present(values).sort((a, b) => a - b);
  if (v.length === 0) return undefined;
  const h = (v.length - 1) * (p / 100);
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return (v[lo] as number) + (h - lo) * ((v[hi] as number) - (v[lo] as number));
}

export function mean(values: readonly MaybeNumber[]): number | undefined {
  const v = present(values);
  return v.length === 0 ? undefined : v.reduce((a, b) => a + b, 0) / v.length;
}

/** Sample standard deviation (n - 1); undefined for fewer than two values. */
export function stddev(values: readonly MaybeNumber[]): number | undefined {
  const v = present(values);
  if (v.length < 2) return undefined;
  const m = mean(v) as number;
  return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1));
}

export interface Stats {
  n: number;
  median: number | undefined;
  p90: number | undefined;
  p95: number | undefined;
  min: number | undefined;
  max: number | undefined;
  mean: number | undefined;
  sd: number | undefined;
}

export function stats(values: readonly MaybeNumber[]): Stats {
  const v = present(values);
  return { n: v.length, median: median(v), p90: percentile(v, 90), p95: percentile(v, 95), min: min(v), max: max(v), mean: mean(v), sd: stddev(v) };
}

/** mulberry32: a small seeded PRNG, so a bootstrap is repeatable from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface DiffInterval {
  /** median(a) - median(b) */
  diff: number;
  low: number;
  high: number;
  level: number;
  resamples: number;
  seed: number;
  nA: number;
  nB: number;
  /** Set when the groups are too small for the interval to mean much. */
  warning?: string;
}

/** Fewer repetitions than this per group and a bootstrap interval says little. */
export const MIN_BOOTSTRAP_N = 5;

/**
 * Percentile bootstrap interval for the difference of medians, median(a) - median(b):
 * each group is resampled with replacement on its own, `resamples` times.
 */
export function bootstrapMedianDiff(
  aValues: readonly MaybeNumber[],
  bValues: readonly MaybeNumber[],
  { level = 0.95, resamples = 5000, seed = 1 }: { level?: number; resamples?: number; seed?: number } = {},
): DiffInterval | undefined {
  const a = present(aValues);
  const b = present(bValues);
  if (a.length === 0 || b.length === 0) return undefined;
  const rnd = seededRandom(seed);
  const draw = (xs: number[]) => {
    const s = new Array<number>(xs.length);
    for (let i = 0; i < xs.length; i++) s[i] = xs[Math.floor(rnd() * xs.length)] as number;
    return median(s) as number;
  };
  const diffs = new Array<number>(resamples);
  for (let i = 0; i < resamples; i++) diffs[i] = draw(a) - draw(b);
  const tail = ((1 - level) / 2) * 100;
  const out: DiffInterval = {
    diff: (median(a) as number) - (median(b) as number),
    low: percentile(diffs, tail) as number,
    high: percentile(diffs, 100 - tail) as number,
    level,
    resamples,
    seed,
    nA: a.length,
    nB: b.length,
  };
  if (a.length < MIN_BOOTSTRAP_N || b.length < MIN_BOOTSTRAP_N)
    out.warning = `only ${a.length} and ${b.length} values: a bootstrap interval needs at least ${MIN_BOOTSTRAP_N} per group to mean much`;
  return out;
}
