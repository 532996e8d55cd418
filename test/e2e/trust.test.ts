/**
 * Numbers and guests you can trust (QEMU 9+ by default, no guest memory write lost,
 * QEMU's figures read right), end to end on the real test lab.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { cli, leftovers, runFixture, testPlan, testTopologyFile } from './helpers.ts';
import type { Results } from '../../lab/results/schema.ts';
import { resolveBuild, debianBuildCached } from '../../lab/qemu/builds.ts';
import { loadTopology } from '../../lab/config/topology.ts';

describe('a memory-load migration under the default QEMU', () => {
  let results: Results;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    const f = await runFixture('test/fixtures/trust.yaml');
    ({ results, cleanup } = f);
    expect(f.run.exitCode, f.run.all).toBe(0);
  }, 300_000);
  afterAll(() => cleanup());

  it('runs QEMU 9.0 or later and knows of no issue with it', () => {
    const [major] = results.environment.qemuVersion.split('.').map(Number);
    expect(major).toBeGreaterThanOrEqual(9);
    expect(results.environment.knownIssues).toEqual([]);
    for (const i of results.iterations) expect(i.hypervisor).toMatchObject({ build: 'system', version: results.environment.qemuVersion });
  });

  it('proves every migration lost no guest memory write: the writer checked every page of its working set on the destination', () => {
    for (const i of results.iterations) {
      expect(i.ok, `${i.strategy} #${i.repetition}: ${i.error}`).toBe(true);
      expect(i.verified.ramIntact).toBe(true);
      expect(i.ram).toEqual({ pagesChecked: (32 * 2 ** 20) / 4096, pagesBad: 0, firstBad: null });
      // the writer really ran at its pace
      expect(i.guest!.workload!.memory!.rateMiBs).toBeGreaterThan(12);
    }
  });

  it('has no QEMU figure of 0, and QEMU\'s own events bracket its downtime', () => {
    for (const i of results.iterations) {
      const q = i.qemu;
      expect(q.totalTimeMs, i.notes.join('; ')).toBeGreaterThan(0);
      expect(q.downtimeMs).toBeGreaterThan(0);
      expect(q.setupTimeMs).not.toBeNull();
      expect(q.eventDowntimeMs).not.toBeNull();
      expect(q.eventDowntimeMs!).toBeGreaterThanOrEqual(q.downtimeMs! - 1);
      expect(i.crossCheck ?? []).toEqual([]);
      expect(i.qemu.totalTimeMs!).toBeLessThanOrEqual(i.durationMs! + 1);
    }
  });
});

describe('QEMU 7.2 (the lost-writes bug) as a hypervisor build', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'ml72-'));
  let available = false;
  beforeAll(async () => {
    const t = await loadTopology(testTopologyFile);
    // Debian 12's apt sources have it; unpacking it is what `hypervisor.qemu: debian-7.2` does.
    available = debianBuildCached('7.2', t.paths.qemuCache) || (await resolveBuild('debian-7.2', t.paths.qemuCache).then(() => true, () => false));
  }, 300_000);
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  it('is refused with a memory workload under TCG, naming the issue, before anything starts (exit 3)', async (ctx) => {
    if (!available) ctx.skip('no QEMU 7.2 in this machine\'s apt sources');
    const plan = await testPlan();
    await cli(['down', testTopologyFile]);
    const r = await cli(['run', 'test/fixtures/qemu72.yaml', '--results-dir', join(scratch, 'refused')]);
    expect(r.exitCode, r.all).toBe(3);
    expect(r.stderr).toMatch(/QEMU 7\.2\.\d+ \(debian-7\.2\) under TCG with a memory workload/);
    expect(r.stderr).toMatch(/03bfc2188f06/);
    expect(r.stderr).toMatch(/hypervisor\.allowKnownIssues/);
    expect(await leftovers(plan)).toEqual([]);
  });

  it('runs with the opt-in, and every iteration says whether 7.2 kept the guest\'s memory (checked, whatever it found)', async (ctx) => {
    if (!available) ctx.skip('no QEMU 7.2 in this machine\'s apt sources');
    const file = join(scratch, 'qemu72-allowed.yaml');
    writeFileSync(file, readFileSync('test/fixtures/qemu72.yaml', 'utf8').replace('topology: test.lab.yaml', `topology: ${join(process.cwd(), 'test/fixtures/test.lab.yaml')}`).replace('  qemu: debian-7.2', '  qemu: debian-7.2\n  allowKnownIssues: true'));
    const dir = join(scratch, 'allowed');
    const r = await cli(['run', file, '--results-dir', dir], { timeoutMs: 280_000 });
    expect([0, 1]).toContain(r.exitCode);
    const res = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Results;
    expect(res.environment.builds?.find((b) => b.id === 'debian-7.2')?.version).toMatch(/^7\.2\./);
    for (const i of res.iterations) {
      expect(i.hypervisor?.version).toMatch(/^7\.2\./);
      expect(i.hypervisor?.firmwareDirs.length).toBeGreaterThan(0);
      // a guest that panicked may not answer at all; one that does was checked page by page
      if (i.ram) expect(i.ram.pagesChecked).toBe((48 * 2 ** 20) / 4096);
      expect(typeof i.verified.ramIntact === 'boolean').toBe(true);
      if (i.verified.ramIntact === false) expect(i.ok).toBe(false);
    }
    await cli(['down', testTopologyFile]);
  }, 300_000);
});

describe('verify.ramDump: both sides\' RAM compared byte for byte', () => {
  let results: Results;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    const f = await runFixture('test/fixtures/ramdump.yaml');
    ({ results, cleanup } = f);
    expect(f.run.exitCode, f.run.all).toBe(0);
  }, 300_000);
  afterAll(() => cleanup());

  it('finds no differing page, and marks the iteration as not comparable for timing', () => {
    expect(results.iterations).toHaveLength(2);
    for (const i of results.iterations) {
      expect(i.ok, i.error).toBe(true);
      expect(i.ramDump).toMatchObject({ bytes: 128 * 2 ** 20, pagesDiffering: 0, firstPages: [] });
      expect(i.verified.ramIntact).toBe(true);
      expect(i.notes.join(' ')).toMatch(/not comparable for timing/);
    }
    expect(existsSync(join(results.iterations[0]!.source, 'ram.dump'))).toBe(false);
  });
});
