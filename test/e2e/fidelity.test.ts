import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { leftovers, testPlan, runFixture } from './helpers.ts';
import type { Results, IterationResult } from '../../lab/results/schema.ts';

let results: Results;
let stdout: string;
let cleanup: () => Promise<void>;

/** One real matrix run: 2 link cells x 2 strategies, 1 ms ping, a memory-dirtying guest. */
describe('measurement fidelity on a real run', () => {
  beforeAll(async () => {
    let f = await runFixture('test/fixtures/fidelity.yaml');
    // Under TCG (QEMU 7.2) a guest that dirties memory while it migrates has, about once in
    // ten of these runs, come up on the destination with zeroed pages and panicked (its
    // console tail is in the iteration's notes; see the closing note of issue 3). migralab
    // reports that as a failed iteration, as it should; this test is about the figures of
    // healthy migrations, so it gives such a run one more go, and says so.
    const crashed = f.results?.iterations.some((i) => /stopped answering/.test(i.error ?? ''));
    if (f.run.exitCode !== 0 && crashed) {
      console.warn(`guest crashed after a migration; running the fixture again:\n${f.results.iterations.map((i) => `${i.cell?.label}: ${i.error ?? 'ok'} ${i.notes.join(' ')}`).join('\n')}`);
      await f.cleanup();
      f = await runFixture('test/fixtures/fidelity.yaml');
    }
    ({ results, cleanup } = f);
    stdout = f.run.stdout;
    expect(f.run.exitCode, f.run.all).toBe(0);
  }, 600_000);
  afterAll(() => cleanup());

  const find = (strategy: string, capped: boolean): IterationResult =>
    results.iterations.find((i) => i.strategy === strategy && (i.link!.rateBitsPerSec !== null) === capped)!;

  it('expands the matrix into labelled cells, interleaved, grouped in the summary', () => {
    expect(results.iterations.map((i) => i.cell!.label)).toEqual([
      'block, link.rate=unlimited',
      'shared, link.rate=unlimited',
      'block, link.rate=400Mbit',
      'shared, link.rate=400Mbit',
    ]);
    expect(results.summary!.strategies.map((s) => s.cell)).toEqual(results.iterations.map((i) => i.cell!.label));
    expect(results.summary!.ratiosByGroup!.map((g) => g.group)).toEqual(['link.rate=unlimited', 'link.rate=400Mbit']);
    expect(stdout).toMatch(/block\/shared \(ratio of medians\) at link\.rate=400Mbit/);
  });

  it('a capped block migration respects the physical limit and the 1.25x target', () => {
    const i = find('block', true);
    expect(i.ok, i.error).toBe(true);
    const physicalMs = ((i.link!.wireBytes! * 8) / 400e6) * 1000;
    expect(i.durationMs!).toBeGreaterThanOrEqual(physicalMs * 0.97);
    expect(i.durationMs!).toBeLessThanOrEqual(physicalMs * 1.25);
    expect(i.link!.efficiency!).toBeGreaterThan(0.8);
    expect(i.link!.efficiency!).toBeLessThanOrEqual(1.03);
    // uncapped, the same migration is faster
    expect(find('block', false).durationMs!).toBeLessThan(i.durationMs!);
  });

  it('records a phase timeline sampled every 50 ms, and phases that add up', () => {
    const i = find('block', true);
    const samples = i.timeline!.samples!;
    expect(samples.length).toBeGreaterThan(10);
    const gaps = samples.slice(1).map((s, k) => s.t - samples[k]!.t).sort((a, b) => a - b);
    // every 50 ms, plus the time QEMU takes to answer; it cannot answer during the switchover
    expect(gaps[gaps.length >> 1]!).toBeLessThan(80);
    expect(gaps[gaps.length - 1]!).toBeLessThan(i.qemu.downtimeMs! + i.phases!.resumeMs! + 250);
    expect(samples.some((s) => s.phase === 'mirror')).toBe(true);
    expect(samples.some((s) => s.phase === 'ram')).toBe(true);
    const p = i.phases!;
    expect(p.mirrorMs!).toBeGreaterThan(0);
    expect(p.ramIterations!).toBeGreaterThanOrEqual(1);
    expect(p.mirrorMs! + p.precopyMs! + p.switchoverMs!).toBeLessThanOrEqual(i.durationMs! + 1);
    expect(p.mirrorMs! + p.precopyMs! + p.switchoverMs!).toBeGreaterThan(i.durationMs! * 0.9);
  });

  it('the memory workload took effect: the guest dirtied about 8 MiB/s and QEMU saw dirty pages', () => {
    for (const i of results.iterations) {
      expect(i.guest!.workload!.memory!.rateMiBs).toBeGreaterThan(5);
      expect(i.guest!.workload!.memory!.rateMiBs).toBeLessThan(11);
    }
    expect(Math.max(...results.iterations.map((i) => i.qemu.dirtyBytesPerSecMax ?? 0))).toBeGreaterThan(2 ** 20);
  });

  it('the guest view is consistent with QEMU downtime and the network gap', () => {
    for (const i of results.iterations) {
      expect(i.crossCheck, JSON.stringify(i.crossCheck)).toEqual([]);
      const g = i.guest!;
      expect(g.clockLossMs!).toBeGreaterThanOrEqual(i.qemu.downtimeMs! - g.clockUncertaintyMs! - 1);
      expect(g.clockLossMs!).toBeLessThanOrEqual(i.ping.maxGapMs! + g.clockUncertaintyMs! + 5);
    }
  });

  it('1 ms probing works, and the harness reports its own CPU time', () => {
    for (const i of results.iterations) {
      expect(i.ping.intervalMs).toBe(1);
      expect(i.ping.medianGapMs!).toBeLessThan(3);
      expect(i.ping.sent!).toBeGreaterThan(300);
      expect(i.harness!.cpuMs!).toBeGreaterThan(0);
      expect(i.harness!.pingCpuMs).not.toBeNull();
    }
  });

  it('leaves nothing behind, the link shaping included', async () => {
    expect(await leftovers(await testPlan())).toEqual([]);
  });
});
