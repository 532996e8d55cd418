import { describe, it, expect } from 'vitest';
import { scenarioSchema } from '../../../lab/config/scenario.ts';
import { evaluateThresholds, formatThresholds } from '../../../lab/results/thresholds.ts';
import { loadMatrix, makeResults } from './fixtures.ts';

const thresholds = (t: Record<string, unknown>) => scenarioSchema.parse({ name: 't', thresholds: t }).thresholds;

/** Gaps 100, 200, … 1000 ms: p95 = 955, p90 = 910, median = 550, max = 1000. */
const tenGaps = Array.from({ length: 10 }, (_, i) => ({ durationMs: 2000 + i, downtimeMs: 30, maxGapMs: 100 * (i + 1), lost: 0 }));

describe('evaluateThresholds', () => {
  it('checks the chosen statistic against known data', () => {
    const r = makeResults({ block: tenGaps });
    const at = (limit: number, statistic: string) => evaluateThresholds(r, thresholds({ maxInterruptionMs: limit, statistic }))[0]!;
    expect(at(950, 'p95')).toMatchObject({
      name: 'block: ping interruption p95 <= 950 ms',
      strategy: 'block',
      metric: 'interruptionMs',
      statistic: 'p95',
      limit: 950,
      observed: 955,
      held: false,
    });
    expect(at(960, 'p95')).toMatchObject({ observed: 955, held: true });
    expect(at(910, 'p90')).toMatchObject({ observed: 910, held: true });
    expect(at(549, 'median')).toMatchObject({ observed: 550, held: false });
    expect(at(999, 'max')).toMatchObject({ observed: 1000, held: false });
  });

  it('defaults to the maximum', () => {
    const [c] = evaluateThresholds(makeResults({ block: tenGaps }), thresholds({ maxDowntimeMs: 30 }));
    expect(c).toMatchObject({ name: 'block: QEMU downtime max <= 30 ms', metric: 'downtimeMs', statistic: 'max', observed: 30, held: true });
  });

  it('gives one check per threshold and strategy, in strategy order', () => {
    const r = makeResults({ block: tenGaps, shared: tenGaps.slice(0, 3) });
    const checks = evaluateThresholds(r, thresholds({ maxInterruptionMs: 500, maxDurationMs: 5000, maxDowntimeMs: 100, maxFailureRate: 0 }));
    expect(checks.map((c) => c.name)).toEqual([
      'block: ping interruption max <= 500 ms',
      'block: duration max <= 5000 ms',
      'block: QEMU downtime max <= 100 ms',
      'block: failure rate <= 0%',
      'shared: ping interruption max <= 500 ms',
      'shared: duration max <= 5000 ms',
      'shared: QEMU downtime max <= 100 ms',
      'shared: failure rate <= 0%',
    ]);
    expect(checks.map((c) => c.held)).toEqual([false, true, true, true, true, true, true, true]);
  });

  it('measures the failure rate over all iterations, metrics over successful ones', () => {
    const r = makeResults({ block: [{ maxGapMs: 100 }, { maxGapMs: 9000, ok: false }, { maxGapMs: 200 }, { maxGapMs: 300 }] });
    const [gap, rate] = evaluateThresholds(r, thresholds({ maxInterruptionMs: 300, maxFailureRate: 0.2 }));
    expect(gap).toMatchObject({ observed: 300, held: true });
    expect(rate).toMatchObject({ name: 'block: failure rate <= 20%', metric: 'failureRate', statistic: 'rate', observed: 0.25, held: false });
    expect(rate!.reason).toBe('observed 25% (1/4 failed)');
    const [ok] = evaluateThresholds(r, thresholds({ maxFailureRate: 0.25 }));
    expect(ok!.held).toBe(true);
  });

  it('does not hold a limit with nothing to measure', () => {
    const allFailed = makeResults({ block: [{ ok: false }, { ok: false }] });
    const [a] = evaluateThresholds(allFailed, thresholds({ maxDurationMs: 1000 }));
    expect(a).toMatchObject({ observed: null, held: false });
    expect(a!.reason).toBe('nothing to measure: all 2 iterations failed');

    const noDowntime = makeResults({ shared: [{ durationMs: 500 }, { durationMs: 600 }] });
    const [b] = evaluateThresholds(noDowntime, thresholds({ maxDowntimeMs: 100 }));
    expect(b).toMatchObject({ observed: null, held: false });
    expect(b!.reason).toBe('nothing to measure: no QEMU downtime recorded in 2 successful iterations');

    const neverRan = makeResults({ block: [{ durationMs: 500 }] }, {}, { asRun: { strategies: ['block', 'shared'] } });
    const checks = evaluateThresholds(neverRan, thresholds({ maxDurationMs: 1000, maxFailureRate: 0.5 }));
    expect(checks.map((c) => [c.name, c.held, c.reason])).toEqual([
      ['block: duration max <= 1000 ms', true, 'observed max 500.0 ms over 1 successful iteration'],
      ['block: failure rate <= 50%', true, 'observed 0% (0/1 failed)'],
      ['shared: duration max <= 1000 ms', false, 'nothing to measure: no iteration ran'],
      ['shared: failure rate <= 50%', false, 'nothing to measure: no iteration ran'],
    ]);
  });

  it('says when only some successful iterations had the figure', () => {
    const r = makeResults({ block: [{ maxGapMs: 100 }, { maxGapMs: null }, { maxGapMs: 200 }] });
    const [c] = evaluateThresholds(r, thresholds({ maxInterruptionMs: 500 }));
    expect(c!.reason).toBe('observed max 200.0 ms over 2 of 3 successful iterations');
  });

  it('gives one check per threshold and matrix cell, named after the cell, from that cell\'s iterations only', () => {
    const m = loadMatrix();
    const checks = evaluateThresholds(m, thresholds({ maxDurationMs: 10000, maxDowntimeMs: 300, maxFailureRate: 0 }));
    expect(checks.map((c) => [c.name, c.cell, c.strategy, c.observed, c.held])).toEqual([
      ['block, link.rate=unlimited: duration max <= 10000 ms', 'block, link.rate=unlimited', 'block', 1015.414313, true],
      ['block, link.rate=unlimited: QEMU downtime max <= 300 ms', 'block, link.rate=unlimited', 'block', 150, true],
      ['block, link.rate=unlimited: failure rate <= 0%', 'block, link.rate=unlimited', 'block', 0, true],
      ['shared, link.rate=unlimited: duration max <= 10000 ms', 'shared, link.rate=unlimited', 'shared', 645.365616, true],
      ['shared, link.rate=unlimited: QEMU downtime max <= 300 ms', 'shared, link.rate=unlimited', 'shared', 40, true],
      ['shared, link.rate=unlimited: failure rate <= 0%', 'shared, link.rate=unlimited', 'shared', 0, true],
      ['block, link.rate=200Mbit: duration max <= 10000 ms', 'block, link.rate=200Mbit', 'block', 14561.065976, false],
      ['block, link.rate=200Mbit: QEMU downtime max <= 300 ms', 'block, link.rate=200Mbit', 'block', 282, true],
      ['block, link.rate=200Mbit: failure rate <= 0%', 'block, link.rate=200Mbit', 'block', 0, true],
      ['shared, link.rate=200Mbit: duration max <= 10000 ms', 'shared, link.rate=200Mbit', 'shared', 15623.345483, false],
      // QEMU's downtime overran the scenario's 300 ms downtime limit here
      ['shared, link.rate=200Mbit: QEMU downtime max <= 300 ms', 'shared, link.rate=200Mbit', 'shared', 305, false],
      ['shared, link.rate=200Mbit: failure rate <= 0%', 'shared, link.rate=200Mbit', 'shared', 0, true],
    ]);
    expect(checks[6]!.reason).toBe('observed max 14561.1 ms over 1 successful iteration');
  });

  it('names checks after the strategy for results without cells, as before', () => {
    const checks = evaluateThresholds(makeResults({ block: tenGaps }), thresholds({ maxDowntimeMs: 30 }));
    expect(checks.map((c) => [c.name, c.cell])).toEqual([['block: QEMU downtime max <= 30 ms', 'block']]);
  });

  it('checks nothing without thresholds', () => {
    expect(evaluateThresholds(makeResults({ block: tenGaps }), undefined)).toEqual([]);
    expect(evaluateThresholds(makeResults({ block: tenGaps }), thresholds({}))).toEqual([]);
  });
});

describe('formatThresholds', () => {
  it('prints PASS or FAIL with the observed value', () => {
    const r = makeResults({ block: tenGaps, shared: [{ ok: false }] });
    const text = formatThresholds(evaluateThresholds(r, thresholds({ maxInterruptionMs: 960, statistic: 'p95' })));
    expect(text.split('\n')).toEqual([
      'PASS block: ping interruption p95 <= 960 ms: observed p95 955.0 ms over 10 successful iterations',
      'FAIL shared: ping interruption p95 <= 960 ms: nothing to measure: the only iteration failed',
    ]);
  });
});
