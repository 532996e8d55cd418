/**
 * The largest silences in a reply stream, not only the largest one: a block migration
 * can interrupt the guest twice (at the mirror start and at the switchover), and
 * `maxGapMs` alone would show only one of them.
 */
export interface Gap {
  /** ms after the iteration's t0 of the reply that opens the gap */
  startMs: number;
  endMs: number;
  ms: number;
}

/** The n largest gaps between consecutive reply times (ms, ascending input not required), largest first. */
export function topGaps(times: readonly number[], n: number): Gap[] {
  const t = [...times].sort((a, b) => a - b);
  const gaps: Gap[] = [];
  for (let i = 1; i < t.length; i++) gaps.push({ startMs: t[i - 1]!, endMs: t[i]!, ms: t[i]! - t[i - 1]! });
  return gaps.sort((a, b) => b.ms - a.ms).slice(0, n);
}
