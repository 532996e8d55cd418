import { describe, it, expect } from 'vitest';
import { plan, expandCells } from '../../../lab/runner/matrix.ts';
import { buildsOf, hostMemoryRefusal, knownIssueRefusals } from '../../../lab/runner/run.ts';
import { parseConfig } from '../../../lab/config/load.ts';
import { scenarioSchema } from '../../../lab/config/scenario.ts';
import { defaultResultsDir, type IterationResult } from '../../../lab/results/schema.ts';
import { summarize } from '../../../lab/results/cells.ts';

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
  const scenario = (yaml: string) => parseConfig('s.yaml', yaml, scenarioSchema);

  it('interleaves strategies within each repetition', () => {
    expect(plan(scenario('name: x\nrepetitions: 3\n')).map((p) => `${p.cell.strategy}${p.repetition}`)).toEqual([
      'block1', 'shared1', 'block2', 'shared2', 'block3', 'shared3',
    ]);
  });

  it('expands axes into labelled cells: every combination x every strategy', () => {
    const s = scenario(['name: x', 'link: { rate: 1Gbit }', 'axes:', '  link.rate: [unlimited, 100Mbit]', '  tunables.downtimeLimitMs: [30, 300]', ''].join('\n'));
    const cells = expandCells(s);
    expect(cells.map((c) => c.label)).toEqual([
      'block, link.rate=unlimited, tunables.downtimeLimitMs=30',
      'shared, link.rate=unlimited, tunables.downtimeLimitMs=30',
      'block, link.rate=unlimited, tunables.downtimeLimitMs=300',
      'shared, link.rate=unlimited, tunables.downtimeLimitMs=300',
      'block, link.rate=100Mbit, tunables.downtimeLimitMs=30',
      'shared, link.rate=100Mbit, tunables.downtimeLimitMs=30',
      'block, link.rate=100Mbit, tunables.downtimeLimitMs=300',
      'shared, link.rate=100Mbit, tunables.downtimeLimitMs=300',
    ]);
    expect(cells[0]!.settings.link.rate).toBeNull();
    expect(cells[4]!.settings.link.rate).toBe(100e6);
    expect(cells[2]!.settings.tunables.downtimeLimitMs).toBe(300);
    expect(cells[4]!.group).toBe('link.rate=100Mbit, tunables.downtimeLimitMs=30');
    // the base value holds where no axis overrides it
    expect(expandCells(scenario('name: x\nlink: { rate: 1Gbit }\n'))[0]!.settings.link.rate).toBe(1e9);
    // repetitions interleave whole matrices
    const order = plan({ ...s, repetitions: 2 });
    expect(order).toHaveLength(16);
    expect(order[8]!.cell.label).toBe(cells[0]!.label);
    expect(order[8]!.repetition).toBe(2);
  });

  it('refuses an axis it does not know and a bad axis value, at their lines', () => {
    expect(() => scenario('name: x\naxes:\n  guest.memory: [1]\n')).toThrow(/s\.yaml:3:17 axes\.guest\.memory: expected one of link\.rate/);
    expect(() => scenario('name: x\naxes:\n  link.rate: [10Mbit, fast]\n')).toThrow(/s\.yaml:3:23 axes\.link\.rate\[1\]: expected a link rate/);
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

describe('drivers, builds and known issues in the plan', () => {
  const scenario = (yaml: string) => parseConfig('s.yaml', yaml, scenarioSchema);
  it('a second driver is a cell parameter, interleaved like the strategies', () => {
    const cells = expandCells(scenario('name: x\ndrivers: [libvirt, qemu]\n'));
    expect(cells.map((c) => c.label)).toEqual(['block, driver=libvirt', 'shared, driver=libvirt', 'block, driver=qemu', 'shared, driver=qemu']);
    expect(cells.map((c) => c.driver)).toEqual(['libvirt', 'libvirt', 'qemu', 'qemu']);
    // one driver: labels as before
    expect(expandCells(scenario('name: x\n')).map((c) => c.label)).toEqual(['block', 'shared']);
  });

  it('lists the builds a scenario needs', () => {
    expect(buildsOf(scenario('name: x\naxes:\n  hypervisor.qemu: [debian-7.2, system]\n'))).toEqual(['debian-7.2', 'system']);
    expect(buildsOf(scenario('name: x\n'))).toEqual(['system']);
  });

  it('refuses QEMU < 9.0 under TCG with a memory workload unless the scenario opts in', () => {
    const b = (version: string) => new Map([['debian-7.2', { id: 'debian-7.2', binary: '/q', version, versionText: '', firmwareDirs: [] }], ['system', { id: 'system', binary: 'q', version: '10.0.2', versionText: '', firmwareDirs: [] }]]);
    const load = 'workload: { memory: { rateMiBs: 20 } }\naxes:\n  hypervisor.qemu: [debian-7.2, system]\n';
    const refused = knownIssueRefusals(expandCells(scenario(`name: x\n${load}`)), b('7.2.22'), 'tcg');
    expect(refused).toHaveLength(2); // block and shared cells of 7.2
    expect(refused[0]).toMatch(/QEMU 7\.2\.22 \(debian-7\.2\) under TCG with a memory workload.*03bfc2188f06/);
    expect(knownIssueRefusals(expandCells(scenario(`name: x\nhypervisor: { allowKnownIssues: true }\n${load}`)), b('7.2.22'), 'tcg')).toEqual([]);
    expect(knownIssueRefusals(expandCells(scenario(`name: x\n${load}`)), b('7.2.22'), 'kvm')).toEqual([]);
    expect(knownIssueRefusals(expandCells(scenario('name: x\naxes:\n  hypervisor.qemu: [debian-7.2]\n')), b('7.2.22'), 'tcg')).toEqual([]);
  });

  it('refuses the same strategy or driver twice', () => {
    expect(() => scenario('name: x\nstrategies: [shared, shared]\n')).toThrow(/strategies\[1\]: strategy shared is listed twice/);
    expect(() => scenario('name: x\ndrivers: [qemu, qemu]\n')).toThrow(/drivers\[1\]: driver qemu is listed twice/);
  });
});

describe('host memory', () => {
  const cells = expandCells(parseConfig('s.yaml', 'name: x\nstrategies: [block, shared]\n', scenarioSchema));
  it('refuses guests the host cannot hold (two guests and a destination), naming the figures', () => {
    expect(hostMemoryRefusal(cells, 8 * 1024 ** 3, 20 * 1024 ** 3)).toMatch(/2 guest\(s\) of 8\.0GiB plus a destination .* need 24\.0GiB, and this host has 20\.0GiB available/);
  });
  it('lets a run that fits go, and does not guess when the host does not say', () => {
    expect(hostMemoryRefusal(cells, 256 * 1024 ** 2, 20 * 1024 ** 3)).toBeNull();
    expect(hostMemoryRefusal(cells, 8 * 1024 ** 3, null)).toBeNull();
  });
});
