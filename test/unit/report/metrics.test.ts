import { describe, it, expect } from 'vitest';
import { blockMinusShared, groups, metrics, strategyStats } from '../../../lab/report/metrics.ts';
import { makeResults } from './fixtures.ts';

const it4 = (durationMs: number, ok = true) => ({ durationMs, downtimeMs: durationMs / 10, maxGapMs: durationMs / 5, lost: 1, ok });

describe('metrics', () => {
  it('reads each figure from an iteration', () => {
    const r = makeResults({ block: [{ durationMs: 1000, downtimeMs: 40, maxGapMs: 120, lost: 3 }] });
    const i = r.iterations[0]!;
    expect(metrics.map((m) => [m.key, m.get(i)])).toEqual([
      ['durationMs', 1000],
      ['downtimeMs', 40],
      ['interruptionMs', 120],
      ['lostPings', 3],
    ]);
  });
});

describe('groups', () => {
  it('follows the scenario strategy order, not the order of appearance', () => {
    const r = makeResults({ block: [it4(100), it4(200, false)], shared: [it4(50)] }, {}, { asRun: { name: 'x', strategies: ['shared', 'block'] } });
    const g = groups(r);
    expect(g.map((x) => x.strategy)).toEqual(['shared', 'block']);
    expect(g[1]!.iterations.map((i) => i.durationMs)).toEqual([100, 200]);
    expect(g[1]!.ok.map((i) => i.durationMs)).toEqual([100]);
  });

  it('falls back to the order of appearance without a recorded scenario', () => {
    const r = makeResults({ shared: [it4(50)], block: [it4(100)] }, {}, { asRun: null });
    expect(groups(r).map((x) => x.strategy)).toEqual(['shared', 'block']);
  });

  it('keeps a planned strategy that never ran as an empty group', () => {
    const r = makeResults({ block: [it4(100)] }, {}, { asRun: { strategies: ['block', 'shared'] } });
    expect(groups(r).map((g) => [g.strategy, g.iterations.length])).toEqual([
      ['block', 1],
      ['shared', 0],
    ]);
  });
});

describe('strategyStats', () => {
  it('describes each metric over successful iterations only', () => {
    const r = makeResults({ block: [it4(100), it4(300), it4(9999, false), it4(200)], shared: [it4(10)] });
    const [block, shared] = strategyStats(r);
    expect(block).toMatchObject({ strategy: 'block', iterations: 4, failed: 1 });
    expect(block!.stats.durationMs).toMatchObject({ n: 3, median: 200, min: 100, max: 300 });
    expect(block!.stats.interruptionMs).toMatchObject({ n: 3, median: 40, max: 60 });
    expect(shared!.stats.lostPings).toMatchObject({ n: 1, median: 1 });
  });
});

describe('blockMinusShared', () => {
  it('gives median(block) - median(shared) with an interval per metric, warning on few values', () => {
    const r = makeResults({ block: [it4(1000), it4(1100), it4(1200)], shared: [it4(100), it4(110), it4(120)] });
    const d = blockMinusShared(r);
    expect(d.durationMs?.diff).toBe(990);
    expect(d.durationMs!.low).toBeGreaterThan(0);
    expect(d.durationMs!.low).toBeLessThanOrEqual(990);
    expect(d.durationMs!.high).toBeGreaterThanOrEqual(990);
    expect(d.lostPings?.diff).toBe(0);
    expect(d.durationMs?.warning).toMatch(/only 3 and 3 values/);
  });

  it('is undefined per metric when a strategy is missing', () => {
    const d = blockMinusShared(makeResults({ block: [it4(1000)] }));
    expect(Object.values(d)).toEqual([undefined, undefined, undefined, undefined]);
    expect(Object.keys(d)).toEqual(['durationMs', 'downtimeMs', 'interruptionMs', 'lostPings']);
  });

  it('is repeatable from its seed', () => {
    const r = makeResults({ block: [it4(1000), it4(1500), it4(1200), it4(900), it4(1300)], shared: [it4(100), it4(300), it4(120), it4(90), it4(200)] });
    expect(blockMinusShared(r, 7)).toEqual(blockMinusShared(r, 7));
  });
});
