/**
 * The silences in a reply stream: every gap between consecutive replies, the largest
 * one (the interruption, `maxGapMs`), and the largest few, since a block migration can
 * interrupt the guest twice (at the mirror start and at the switchover) and `maxGapMs`
 * alone would show only one of them. Times may be in any one unit; a gap is in the same
 * (milliseconds everywhere but inside ping's summary, which keeps microseconds exact).
 */
export interface Gap {
  /** ms after the iteration's t0 of the reply that opens the gap */
  startMs: number;
  endMs: number;
  ms: number;
}

/** The gaps between consecutive times (ascending input not required), in time order. */
export function gapsBetween(times: readonly number[]): Gap[] {
  const t = [...times].sort((a, b) => a - b);
  const gaps: Gap[] = [];
  for (let i = 1; i < t.length; i++) gaps.push({ startMs: t[i - 1]!, endMs: t[i]!, ms: t[i]! - t[i - 1]! });
  return gaps;
}

/** The n largest gaps between consecutive reply times, largest first (of equal ones, the earlier first). */
export function topGaps(times: readonly number[], n: number): Gap[] {
  return gapsBetween(times)
    .sort((a, b) => b.ms - a.ms)
    .slice(0, n);
}

/** The largest gap among those that `counts` keeps (the earliest of equal ones); undefined for fewer than two times. */
export function largestGap(times: readonly number[], counts: (g: Gap) => boolean = () => true): Gap | undefined {
  let best: Gap | undefined;
  for (const g of gapsBetween(times)) if (counts(g) && (!best || g.ms > best.ms)) best = g;
  return best;
}
