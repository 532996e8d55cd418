import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it, expect } from 'vitest';
import { compareResults, formatComparison } from '../../../lab/results/compare.ts';
import { loadResults } from '../../../lab/results/load.ts';
import { MigralabError } from '../../../lab/errors.ts';
import { loadMatrix, makeResults, series } from './fixtures.ts';

const base = { durationMs: 2000, downtimeMs: 40, maxGapMs: 300, lost: 20 };
const run = (factor: number, n = 8) => makeResults({ block: series(n, base, factor), shared: series(n, { ...base, durationMs: 500 }, factor) });

describe('compareResults', () => {
  it('finds no change comparing a run with itself', () => {
    const r = run(1);
    const c = compareResults(r, r, { tolerancePct: 10 });
    expect(c.rows).toHaveLength(8);
    expect(c.rows.map((x) => `${x.strategy} ${x.metric}`)).toEqual([
      'block durationMs',
      'block downtimeMs',
      'block interruptionMs',
      'block lostPings',
      'shared durationMs',
      'shared downtimeMs',
      'shared interruptionMs',
      'shared lostPings',
    ]);
    for (const row of c.rows) {
      expect(row.change).toBe(0);
      expect(row.changePct).toBe(0);
      expect(row.verdict).toBe('same');
      expect(row.interval!.low).toBeLessThanOrEqual(0);
      expect(row.interval!.high).toBeGreaterThanOrEqual(0);
      expect(row.warning).toBeUndefined();
    }
    expect(c.regressions).toBe(0);
    expect(c.environmentWarnings).toEqual([]);
    expect(c.warnings).toEqual([]);
  });

  it('calls a clearly slower current run a regression', () => {
    const c = compareResults(run(1), run(1.5), { tolerancePct: 10 });
    const d = c.rows.find((r) => r.strategy === 'block' && r.metric === 'durationMs')!;
    expect(d.baseline).toEqual({ n: 8, median: 2000 });
    expect(d.current).toEqual({ n: 8, median: 3000 });
    expect(d.change).toBe(1000);
    expect(d.changePct).toBe(50);
    expect(d.interval!.diff).toBe(1000);
    expect(d.interval!.low).toBeGreaterThan(0);
    expect(d.verdict).toBe('regression');
    expect(c.rows.every((r) => r.verdict === 'regression')).toBe(true);
    expect(c.regressions).toBe(8);
    expect(c.improvements).toBe(0);
  });

  it('calls the reverse an improvement', () => {
    const c = compareResults(run(1.5), run(1), { tolerancePct: 10 });
    const d = c.rows.find((r) => r.strategy === 'shared' && r.metric === 'interruptionMs')!;
    expect(d.verdict).toBe('improvement');
    expect(d.interval!.high).toBeLessThan(0);
    expect(c.regressions).toBe(0);
    expect(c.improvements).toBe(8);
  });

  it('keeps a change within the tolerance the same, even when its interval excludes 0', () => {
    const c = compareResults(run(1), run(1.05), { tolerancePct: 10 });
    const d = c.rows.find((r) => r.strategy === 'block' && r.metric === 'durationMs')!;
    expect(d.changePct).toBeCloseTo(5, 6);
    expect(d.verdict).toBe('same');
    expect(c.regressions).toBe(0);
    // The same change against a tighter tolerance is a regression only if the interval agrees.
    const tight = compareResults(run(1), run(1.05), { tolerancePct: 1 }).rows.find((r) => r.strategy === 'block' && r.metric === 'durationMs')!;
    expect(tight.verdict).toBe(tight.interval!.low > 0 ? 'regression' : 'same');
  });

  it('does not call a large change a regression when its interval includes 0', () => {
    const noisy = makeResults({ block: [100, 100, 100, 1000, 1000].map((durationMs) => ({ durationMs })) });
    const noisier = makeResults({ block: [100, 100, 1000, 1000, 1000].map((durationMs) => ({ durationMs })) });
    const [d] = compareResults(noisy, noisier, { tolerancePct: 10 }).rows;
    expect(d!.change).toBe(900);
    expect(d!.interval!.low).toBeLessThanOrEqual(0);
    expect(d!.verdict).toBe('same');
  });

  it('warns when there are too few values for the interval', () => {
    const c = compareResults(run(1, 3), run(1.5, 3), { tolerancePct: 10 });
    expect(c.rows[0]!.warning).toMatch(/only 3 and 3 values/);
  });

  it('marks a metric measured on one side only as unmeasured, not a regression', () => {
    const b = makeResults({ block: [{ durationMs: 100, downtimeMs: 10 }] });
    const cur = makeResults({ block: [{ durationMs: 100 }] });
    const c = compareResults(b, cur, { tolerancePct: 10 });
    expect(c.rows.find((r) => r.metric === 'downtimeMs')).toMatchObject({ verdict: 'unmeasured', change: undefined, interval: undefined });
    expect(c.regressions).toBe(0);
  });

  it('warns about each environment difference, naming both values', () => {
    const b = run(1);
    const cur = makeResults({ block: series(8, base) }, { accelerator: 'tcg', qemuVersion: '9.1.0', cpuModel: 'AMD EPYC 7B13', kernel: '6.11.0', nfsClient: 'qemu', node: 'v22.0.0' });
    const c = compareResults(b, cur, { tolerancePct: 10 });
    expect(c.environmentWarnings).toEqual([
      'accelerator differs: baseline kvm, current tcg',
      'QEMU version differs: baseline 8.2.2, current 9.1.0',
      'CPU model differs: baseline Intel(R) Xeon(R) CPU @ 2.20GHz, current AMD EPYC 7B13',
      'kernel differs: baseline 6.8.0-45-generic, current 6.11.0',
      'NFS client differs: baseline kernel, current qemu',
    ]);
    expect(c.warnings).toContain('shared: only in the baseline, not compared');
    expect(c.rows.every((r) => r.strategy === 'block')).toBe(true);
  });

  it('warns about other scenario settings and more failures', () => {
    const b = makeResults({ block: series(4, base) }, {}, { name: 'a' });
    const cur = makeResults({ block: [...series(3, base), { ok: false }] }, {}, { name: 'b', asRun: { name: 'b', strategies: ['block'], guest: { memory: 1 } } });
    const c = compareResults(b, cur, { tolerancePct: 10 });
    expect(c.warnings).toEqual([
      'scenario differs: baseline a, current b',
      'scenario settings differ: topology, drivers, placement, guests, concurrency, guest, ping, link, workload, tunables, mirror, hypervisor, security, verify, axes, stallSeconds, faults',
      'block: 1/4 iterations failed in the current run (baseline 0/4)',
    ]);
    expect(c.cells).toEqual([{ cell: 'block', strategy: 'block', baseline: { iterations: 4, failed: 0 }, current: { iterations: 4, failed: 1 } }]);
  });
});

describe('compareResults on matrix runs', () => {
  const m = loadMatrix();
  const labels = ['block, link.rate=unlimited', 'shared, link.rate=unlimited', 'block, link.rate=200Mbit', 'shared, link.rate=200Mbit'];
  /** The run with every figure of the cells matching `which` scaled by `factor`. */
  const scaled = (factor: number, which: (label: string) => boolean) => {
    const r = structuredClone(m);
    for (const i of r.iterations)
      if (which(i.cell!.label)) {
        i.durationMs = i.durationMs! * factor;
        i.qemu.downtimeMs = i.qemu.downtimeMs! * factor;
        i.ping.maxGapMs = i.ping.maxGapMs! * factor;
        i.ping.lost = Math.round(i.ping.lost! * factor);
      }
    return r;
  };

  it('matches cells by label: a run against itself changes nothing in any cell', () => {
    const c = compareResults(m, m, { tolerancePct: 10 });
    expect(c.cells.map((x) => x.cell)).toEqual(labels);
    expect(c.rows).toHaveLength(labels.length * 4);
    expect([...new Set(c.rows.map((r) => r.cell))]).toEqual(labels);
    expect(c.rows.every((r) => r.change === 0 && r.verdict === 'same')).toBe(true);
    expect(c.warnings).toEqual([]);
  });

  it('compares each cell with the same cell of the baseline, whatever the order', () => {
    const current = scaled(2, (l) => l.endsWith('200Mbit'));
    current.iterations.reverse();
    const c = compareResults(m, current, { tolerancePct: 10 });
    expect(c.cells.map((x) => x.cell)).toEqual([...labels].reverse());
    for (const row of c.rows) {
      const base = m.iterations.find((i) => i.cell!.label === row.cell)!;
      expect(row.strategy).toBe(base.strategy);
      if (row.metric === 'durationMs') expect(row.baseline.median).toBe(base.durationMs);
      if (row.cell.endsWith('unlimited')) expect(row.verdict, `${row.cell} ${row.metric}`).toBe('same');
      // one repetition: the interval is the change itself, and says it means little
      else expect(row.verdict, `${row.cell} ${row.metric}`).toBe('regression');
      expect(row.warning).toMatch(/only 1 and 1 values/);
    }
    const d = c.rows.find((r) => r.cell === 'shared, link.rate=200Mbit' && r.metric === 'durationMs')!;
    expect(d.change).toBeCloseTo(15623.345482999997, 6);
    expect(c.regressions).toBe(8);
  });

  it('warns about a cell on one side only, and compares the others', () => {
    const fewer = { ...m, iterations: m.iterations.filter((i) => i.cell!.label !== 'shared, link.rate=200Mbit') };
    const c = compareResults(m, fewer, { tolerancePct: 10 });
    expect(c.warnings).toEqual(['shared, link.rate=200Mbit: only in the baseline, not compared']);
    expect(c.cells.map((x) => x.cell)).toEqual(labels.slice(0, 3));
    const back = compareResults(fewer, m, { tolerancePct: 10 });
    expect(back.warnings).toEqual(['shared, link.rate=200Mbit: only in the current run, not compared']);
    // a run from before cells (one cell per strategy) shares no cell with a matrix run
    const old = makeResults({ block: series(3, base), shared: series(3, base) });
    const mixed = compareResults(old, m, { tolerancePct: 10 });
    expect(mixed.rows).toEqual([]);
    expect(mixed.warnings).toContain('block: only in the baseline, not compared');
    expect(mixed.warnings).toContain('block, link.rate=unlimited: only in the current run, not compared');
    expect(formatComparison(mixed)).toContain('nothing to compare');
  });

  it('prints one row per cell and metric, the cell\'s label first', () => {
    const lines = formatComparison(compareResults(m, scaled(2, (l) => l.startsWith('block')), { tolerancePct: 10 })).split('\n');
    expect(lines[3]).toMatch(/^cell\s+metric\s+ok\/runs/);
    expect(lines.find((l) => l.startsWith('block, link.rate=200Mbit ') && l.includes('duration'))).toMatch(/1\/1 -> 1\/1\s+14561\.1 ms\s+29122\.1 ms\s+\+14561\.1 ms \(\+100\.0%\)\s+\[\+14561\.1, \+14561\.1\] \*\s+REGRESSION$/);
    expect(lines.find((l) => l.startsWith('shared, link.rate=unlimited ') && l.includes('duration'))).toMatch(/\s+same$/);
    expect(lines).toContain('* block, link.rate=unlimited: only 1 and 1 values: a bootstrap interval needs at least 5 per group to mean much');
  });
});

describe('formatComparison', () => {
  it('prints a row per strategy and metric with the verdict, then warnings and the count', () => {
    const text = formatComparison(compareResults(run(1), makeResults({ block: series(8, base, 1.5), shared: series(8, { ...base, durationMs: 500 }) }, { accelerator: 'tcg' }), { tolerancePct: 10 }));
    const lines = text.split('\n');
    expect(lines[3]).toMatch(/^strategy\s+metric\s+ok\/runs\s+baseline\s+current\s+change\s+95% interval\s+verdict$/);
    expect(lines.find((l) => l.startsWith('block ') && l.includes('duration'))).toMatch(/8\/8 -> 8\/8\s+2000\.0 ms\s+3000\.0 ms\s+\+1000\.0 ms \(\+50\.0%\)\s+\[\+\d+\.\d, \+\d+\.\d\]\s+REGRESSION$/);
    expect(lines.find((l) => l.startsWith('shared ') && l.includes('duration'))).toMatch(/\s+0\.0 ms \(0\.0%\)\s+\[.*\]\s+same$/);
    expect(text).toContain('warning: environment: accelerator differs: baseline kvm, current tcg');
    expect(lines.at(-1)).toBe('4 regressions (0 improved)');
  });
});

describe('loadResults', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'migralab-compare-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a results directory or the results.json in it', async () => {
    const r = run(1, 2);
    await mkdir(join(dir, 'run1'));
    await writeFile(join(dir, 'run1', 'results.json'), JSON.stringify(r));
    expect(await loadResults(join(dir, 'run1'))).toEqual(r);
    expect(await loadResults(join(dir, 'run1', 'results.json'))).toEqual(r);
  });

  it('names the file, the field and the problem of a bad file', async () => {
    const bad = JSON.parse(JSON.stringify(run(1, 2)));
    bad.iterations[1].ping.lost = 'many';
    const file = join(dir, 'bad.json');
    await writeFile(file, JSON.stringify(bad));
    const err = await loadResults(file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigralabError);
    expect((err as MigralabError).code).toBe('CONFIG');
    expect((err as Error).message).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1:\\d+ iterations\\[1\\]\\.ping\\.lost: not a migralab results\\.json: .*expected number`));
  });

  it('rejects something that is not results or not JSON', async () => {
    const other = join(dir, 'package.json');
    await writeFile(other, JSON.stringify({ name: 'x' }));
    await expect(loadResults(other)).rejects.toThrow(/package\.json:1:1 schema: not a migralab results\.json: /);
    const text = join(dir, 'notes.json');
    await writeFile(text, 'hello');
    await expect(loadResults(text)).rejects.toThrow(/notes\.json:1:1 \(document\): not a migralab results\.json: invalid JSON/);
    await expect(loadResults(join(dir, 'missing'))).rejects.toMatchObject({ code: 'CONFIG', message: expect.stringMatching(/missing: cannot read \(no such file or directory\)/) });
    await mkdir(join(dir, 'empty'));
    await expect(loadResults(join(dir, 'empty'))).rejects.toThrow(/empty\/results\.json: cannot read \(no results\.json there\)/);
  });
});
