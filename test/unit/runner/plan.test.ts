import { describe, it, expect } from 'vitest';
import { plan, defaultResultsDir } from '../../../lab/runner/run.ts';
import { summarize, type IterationResult } from '../../../lab/runner/results.ts';

function iteration(strategy: 'block' | 'shared', durationMs: number | null, ok = true, downtimeMs = 10): IterationResult {
  return {
    index: 0, strategy, repetition: 1, source: 'a', destination: 'b', ok, durationMs, prepareMs: 1, mirrorMs: null,
    qemu: { totalTimeMs: durationMs, downtimeMs, setupTimeMs: 0, ramBytes: 1, diskBytes: 0 },
    ping: { intervalMs: 10, sent: 100, received: 98, lost: 2, maxGapMs: 50, maxGapStart: null, maxGapEnd: null, maxRttMs: 1, medianGapMs: 10 },
    verified: { onDestination: ok, sourceGone: ok, diskIntact: ok, answersPing: ok },
    notes: [],
  };
}

describe('scenario runner', () => {
  it('interleaves strategies within each repetition', () => {
    expect(plan({ strategies: ['block', 'shared'], repetitions: 3 }).map((p) => `${p.strategy}${p.repetition}`)).toEqual([
      'block1', 'shared1', 'block2', 'shared2', 'block3', 'shared3',
    ]);
  });

  it('names the default results directory after the time and the scenario', () => {
    expect(defaultResultsDir('block-vs-shared', new Date('2026-11-27T10:11:12.345Z'))).toBe('results/20261127T101112Z-block-vs-shared');
  });

  it('summarizes successful iterations per strategy and the block/shared ratio of medians', () => {
    const s = summarize(
      [iteration('block', 1500), iteration('block', 1400), iteration('block', 9999, false), iteration('shared', 600), iteration('shared', 500), iteration('shared', 700)],
      ['block', 'shared'],
    );
    const block = s.strategies[0]!;
    expect(block).toMatchObject({ strategy: 'block', iterations: 3, failed: 1 });
    expect(block.durationMs).toMatchObject({ n: 2, median: 1450, min: 1400, max: 1500 });
    expect(s.strategies[1]!.durationMs.median).toBe(600);
    expect(s.blockToSharedRatio.durationMs).toBeCloseTo(1450 / 600, 10);
  });
});
