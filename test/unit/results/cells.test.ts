import { describe, it, expect } from 'vitest';
import { blockMinusShared, cellGroups, groups, medianDifferences, statsOf, strategyStats } from '../../../lab/results/cells.ts';
import { harnessMetrics, metrics, phaseMetrics, pingCpuShare, valuesOf } from '../../../lab/results/metrics.ts';
import { bootstrapMedianDiff, stats } from '../../../lab/measure/stats.ts';
import { loadMatrix, makeResults } from './fixtures.ts';

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
    const all = blockMinusShared(r);
    expect(all.map((g) => [g.group, g.block, g.shared])).toEqual([['', 'block', 'shared']]);
    const d = all[0]!.diffs;
    expect(d.durationMs?.diff).toBe(990);
    expect(d.durationMs!.low).toBeGreaterThan(0);
    expect(d.durationMs!.low).toBeLessThanOrEqual(990);
    expect(d.durationMs!.high).toBeGreaterThanOrEqual(990);
    expect(d.lostPings?.diff).toBe(0);
    expect(d.durationMs?.warning).toMatch(/only 3 and 3 values/);
  });

  it('has no group without both strategies; a side with nothing measured gives undefined per metric', () => {
    expect(blockMinusShared(makeResults({ block: [it4(1000)] }))).toEqual([]);
    const d = medianDifferences(makeResults({ block: [it4(1000)] }).iterations, []);
    expect(Object.values(d)).toEqual([undefined, undefined, undefined, undefined]);
    expect(Object.keys(d)).toEqual(['durationMs', 'downtimeMs', 'interruptionMs', 'lostPings']);
    // shared planned but never ran: compared, with nothing to compare
    const neverRan = blockMinusShared(makeResults({ block: [it4(1000)] }, {}, { asRun: { strategies: ['block', 'shared'] } }));
    expect(neverRan).toHaveLength(1);
    expect(Object.values(neverRan[0]!.diffs)).toEqual([undefined, undefined, undefined, undefined]);
  });

  it('is repeatable from its seed', () => {
    const r = makeResults({ block: [it4(1000), it4(1500), it4(1200), it4(900), it4(1300)], shared: [it4(100), it4(300), it4(120), it4(90), it4(200)] });
    expect(blockMinusShared(r, 7)).toEqual(blockMinusShared(r, 7));
  });
});

describe('phase and harness figures', () => {
  it('reads them from an iteration, null when results.json has none', () => {
    const m = loadMatrix();
    const it = m.iterations[2]!;
    expect(phaseMetrics.map((x) => [x.key, x.get(it)])).toEqual([
      ['mirrorMs', it.phases!.mirrorMs],
      ['precopyMs', it.phases!.precopyMs],
      ['ramIterations', 36],
      ['switchoverMs', 282],
      ['resumeMs', it.phases!.resumeMs],
    ]);
    expect(harnessMetrics.map((x) => x.get(it))).toEqual([it.harness!.cpuMs, it.harness!.pingCpuMs, it.harness!.windowMs]);
    expect(pingCpuShare(it)).toBeCloseTo(9110 / 15690.857664, 12);
    const old = makeResults({ block: [it4(100)] }).iterations[0]!;
    expect([...phaseMetrics, ...harnessMetrics].map((x) => x.get(old))).toEqual([null, null, null, null, null, null, null, null]);
    expect(pingCpuShare(old)).toBeNull();
  });
});

describe('on a matrix run (2 link rates x block/shared)', () => {
  const m = loadMatrix();
  const labels = ['block, link.rate=unlimited', 'shared, link.rate=unlimited', 'block, link.rate=200Mbit', 'shared, link.rate=200Mbit'];

  it('groups iterations by cell, in order of first appearance, with strategy, label and group', () => {
    expect(groups(m).map((g) => [g.label, g.strategy, g.group, g.iterations.map((i) => i.index)])).toEqual([
      [labels[0], 'block', 'link.rate=unlimited', [0]],
      [labels[1], 'shared', 'link.rate=unlimited', [1]],
      [labels[2], 'block', 'link.rate=200Mbit', [2]],
      [labels[3], 'shared', 'link.rate=200Mbit', [3]],
    ]);
    expect(cellGroups(m).map((g) => [g.group, g.cells.map((c) => c.strategy)])).toEqual([
      ['link.rate=unlimited', ['block', 'shared']],
      ['link.rate=200Mbit', ['block', 'shared']],
    ]);
  });

  it('gives per-cell statistics equal to stats() over that cell\'s successful iterations, and the medians the runner summarized', () => {
    const per = strategyStats(m);
    expect(per.map((p) => p.label)).toEqual(labels);
    for (const p of per) {
      const ok = m.iterations.filter((i) => i.cell!.label === p.label && i.ok);
      expect(p).toMatchObject({ iterations: ok.length, failed: 0 });
      for (const metric of metrics) expect(p.stats[metric.key], `${p.label} ${metric.key}`).toEqual(stats(valuesOf(ok, metric)));
      const summary = m.summary!.strategies.find((s) => s.cell === p.label)!;
      expect(p.stats.durationMs.median).toBe(summary.durationMs.median);
      expect(p.stats.downtimeMs.median).toBe(summary.downtimeMs.median);
      expect(p.stats.interruptionMs.median).toBe(summary.maxGapMs.median);
    }
    // the two link rates are far apart: mixing them per strategy would be meaningless
    expect(per[2]!.stats.durationMs.median! / per[0]!.stats.durationMs.median!).toBeGreaterThan(10);
  });

  it('gives block − shared per group, from that group\'s cells only, agreeing with the runner\'s ratios', () => {
    const diffs = blockMinusShared(m);
    expect(diffs.map((d) => [d.group, d.block, d.shared])).toEqual([
      ['link.rate=unlimited', labels[0], labels[1]],
      ['link.rate=200Mbit', labels[2], labels[3]],
    ]);
    for (const d of diffs) {
      const of = (label: string) => m.iterations.filter((i) => i.cell!.label === label && i.ok);
      for (const metric of metrics)
        expect(d.diffs[metric.key], `${d.group} ${metric.key}`).toEqual(bootstrapMedianDiff(valuesOf(of(d.block), metric), valuesOf(of(d.shared), metric), { seed: 1 }));
      const ratio = m.summary!.ratiosByGroup!.find((r) => r.group === d.group)!;
      const shared = strategyStats(m).find((p) => p.label === d.shared)!.stats.durationMs.median!;
      expect((d.diffs.durationMs!.diff + shared) / shared).toBeCloseTo(ratio.durationMs!, 12);
      expect(d.diffs.durationMs!.warning).toMatch(/only 1 and 1 values/);
    }
    expect(diffs[0]!.diffs.durationMs!.diff).toBeCloseTo(1015.4143129999993 - 645.3656159999991, 9);
    expect(diffs[1]!.diffs.durationMs!.diff).toBeCloseTo(14561.065975999998 - 15623.345482999997, 9);
  });

  it('keeps results without cells as one cell per strategy (label = strategy, group \'\')', () => {
    const r = makeResults({ block: [it4(100)], shared: [it4(50)] });
    expect(groups(r).map((g) => [g.label, g.group])).toEqual([
      ['block', ''],
      ['shared', ''],
    ]);
    expect(strategyStats(r).map((p) => [p.strategy, p.label, p.group])).toEqual([
      ['block', 'block', ''],
      ['shared', 'shared', ''],
    ]);
  });

  it('adds a planned strategy that never ran in any cell as an empty group', () => {
    const cut = { ...m, iterations: m.iterations.filter((i) => i.strategy === 'block') };
    expect(groups(cut).map((g) => [g.label, g.group, g.iterations.length])).toEqual([
      [labels[0], 'link.rate=unlimited', 1],
      [labels[2], 'link.rate=200Mbit', 1],
      ['shared', '', 0],
    ]);
    expect(blockMinusShared(cut)).toEqual([]);
  });

  it('takes medians of phases per cell', () => {
    const s = statsOf(groups(m)[2]!.ok, phaseMetrics);
    expect(s.ramIterations.median).toBe(36);
    expect(s.switchoverMs.median).toBe(282);
  });
});
