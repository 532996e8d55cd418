/**
 * Host drains (placement { drain: NODE }), as pure functions: how many migrations ran at
 * once, a drain's record from its migrations' windows, and drain time per strategy, driver
 * and concurrency over the repetitions.
 */
import { describe } from '../measure/stats.ts';
import type { DrainRecord, DrainSummary } from './schema.ts';

type Window = { startMs: number | null; endMs: number | null };

/** The most windows open at one moment (a window that ends where another starts does not overlap it). */
export function maxOverlap(windows: readonly Window[]): number {
  const edges: [number, number][] = [];
  for (const w of windows) if (w.startMs !== null && w.endMs !== null) edges.push([w.startMs, 1], [w.endMs, -1]);
  // ends before starts at the same instant
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let most = 0;
  for (const [, d] of edges) most = Math.max(most, (open += d));
  return most;
}

/** From the first window's start to the last one's end; null when no migration started and ended. */
export function drainTotalMs(windows: readonly Window[]): number | null {
  const done = windows.filter((w): w is { startMs: number; endMs: number } => w.startMs !== null && w.endMs !== null);
  if (!done.length) return null;
  return Math.max(...done.map((w) => w.endMs)) - Math.min(...done.map((w) => w.startMs));
}

/** Drain time per (strategy, driver, guests, concurrency), in the order first seen. */
export function summarizeDrains(drains: readonly DrainRecord[]): DrainSummary[] {
  const keys: string[] = [];
  const by = new Map<string, DrainRecord[]>();
  for (const d of drains) {
    const k = `${d.strategy}|${d.driver}|${d.guests}|${d.concurrency}`;
    if (!by.has(k)) {
      keys.push(k);
      by.set(k, []);
    }
    by.get(k)!.push(d);
  }
  return keys.map((k) => {
    const ds = by.get(k)!;
    const ok = ds.filter((d) => d.ok);
    return {
      strategy: ds[0]!.strategy,
      driver: ds[0]!.driver,
      guests: ds[0]!.guests,
      concurrency: ds[0]!.concurrency,
      drains: ds.length,
      failed: ds.length - ok.length,
      // over the drains whose every migration succeeded: a failed one's time is not a drain time
      totalMs: describe(ok.map((d) => d.totalMs)),
      wireBytes: describe(ok.map((d) => d.wireBytes)),
      worstGapMs: describe(ok.map((d) => (d.migrations.some((m) => m.maxGapMs === null) ? null : Math.max(...d.migrations.map((m) => m.maxGapMs!))))),
    };
  });
}
