import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { leftovers, testPlan, runFixture } from './helpers.ts';
import type { LabPlan } from '../../lab/provision/plan.ts';
import type { Results, IterationResult } from '../../lab/results/schema.ts';

const MiB = 2 ** 20;
let plan: LabPlan;
let results: Results;
let cleanup: () => Promise<void>;
let stdout: string;
let stderr: string;

/**
 * One real run of test/fixtures/small.yaml through the CLI: the lab is raised by
 * the run, three block and three shared migrations, interleaved, back and forth
 * (128 MiB guests, 64 MiB disk holding 24 MiB), and the lab is taken down again by the run.
 */
describe('block vs shared migration, end to end', () => {
  beforeAll(async () => {
    plan = await testPlan();
    const f = await runFixture('test/fixtures/small.yaml');
    ({ results, cleanup } = f);
    stdout = f.run.stdout;
    stderr = f.run.stderr;
    expect(f.run.exitCode, f.run.all).toBe(0);
  }, 300_000);
  afterAll(() => cleanup());

  const it1 = (s: string) => results.iterations.find((i) => i.strategy === s)!;

  it('records the environment', () => {
    expect(results.schema).toBe('migralab/results');
    expect(['kvm', 'tcg']).toContain(results.environment.accelerator);
    expect(['kernel', 'qemu']).toContain(results.environment.nfsClient);
    expect(results.environment.qemuVersion).toMatch(/^\d+\.\d+/);
    expect(results.environment.kernel.length).toBeGreaterThan(0);
    expect(results.environment.cpuModel.length).toBeGreaterThan(0);
  });

  it('records what the run cost its host: harness CPU, every QEMU\'s peak memory, and prints it', () => {
    const s = results.sizing!;
    expect(s.harnessCpuMs).toBeGreaterThan(0);
    expect(s.wallMs).toBeGreaterThan(0);
    // every QEMU stopped during the run: per guest its boot and each destination (one per migration)
    for (const strategy of ['block', 'shared']) expect(s.qemu.filter((q) => q.guest.startsWith(strategy)).length).toBe(results.iterations.filter((i) => i.strategy === strategy).length + 1);
    // a QEMU that ran a guest holds more than its own binary, and not wildly more than the guest's memory
    for (const q of s.qemu) expect(q.peakRssBytes).toBeGreaterThan(32 * 2 ** 20);
    for (const b of Object.values(s.peakRssBytesByGuest)) expect(b).toBeLessThan(1024 * 2 ** 20);
    // the snapshot's template is measured (in qemu) but is no guest: the room-for line is the guests'
    for (const g of Object.keys(s.peakRssBytesByGuest)) expect(g).toMatch(/^(block|shared)/);
    expect(s.hostMemAvailableBytes).toBeGreaterThan(0);
    // both guests restored from the booted snapshot of their shape, each in its own time
    expect(s.boot!.map((b) => [b.guest, b.node, b.mode, b.note])).toEqual([
      ['block-vm', 'controller', 'snapshot', null],
      ['shared-vm', 'controller', 'snapshot', null],
    ]);
    for (const b of s.boot!) expect(b.ms).toBeGreaterThan(0);
    expect(stderr).toMatch(/guests up in \d+\.\d s \(restored from a booted snapshot/);
    expect(stdout).toMatch(/sizing: harness CPU \d+\.\d s over \d+\.\d s; QEMU peak RSS .*room for \d+ QEMUs of/);
  });

  it('prepared each guest while the previous iteration (the other guest) ran its last checks, never during its window', () => {
    expect(results.iterations.map((i) => i.overlapped ?? false)).toEqual([false, true, true, true, true, true]);
    // windows one after another: each starts after the previous one's ping window ended
    for (let k = 1; k < results.iterations.length; k++) {
      const a = results.iterations[k - 1]!;
      const b = results.iterations[k]!;
      expect(Date.parse(b.ping.maxGapStart!)).toBeGreaterThan(Date.parse(a.ping.maxGapEnd!));
    }
  });

  it('ran interleaved, back and forth between the nodes', () => {
    expect(results.iterations.map((i) => [i.strategy, i.repetition, i.source, i.destination])).toEqual([
      ['block', 1, 'controller', 'compute1'],
      ['shared', 1, 'controller', 'compute1'],
      ['block', 2, 'compute1', 'controller'],
      ['shared', 2, 'compute1', 'controller'],
      ['block', 3, 'controller', 'compute1'],
      ['shared', 3, 'controller', 'compute1'],
    ]);
  });

  it('every migration verified: on the destination, source gone, answers ping, data intact', () => {
    for (const i of results.iterations) {
      expect(i.ok, `${i.strategy} #${i.repetition}: ${i.error}`).toBe(true);
      expect(i.verified).toEqual({ onDestination: true, sourceGone: true, diskIntact: true, ramIntact: true, answersPing: true });
      expect(i.guestOn).toEqual({ node: i.destination, status: 'running' });
    }
  });

  it.each(['block', 'shared'])('%s: interruption and downtime are positive and plausible', (s) => {
    const i: IterationResult = it1(s);
    // QEMU reports whole milliseconds, and has reported 0 here: never negative, never absurd
    expect(i.qemu.downtimeMs!).toBeGreaterThanOrEqual(0);
    expect(i.qemu.downtimeMs!).toBeLessThan(5000);
    // the network cannot see less than the interval between two pings
    expect(i.ping.maxGapMs!).toBeGreaterThanOrEqual(i.ping.intervalMs * 0.5);
    expect(i.ping.maxGapMs!).toBeLessThan(10_000);
    expect(i.ping.sent!).toBeGreaterThan(10);
    expect(i.ping.received!).toBeGreaterThan(0);
    expect(i.ping.lost).toBe(i.ping.sent! - i.ping.received!);
    expect(i.durationMs!).toBeGreaterThan(0);
    expect(i.durationMs!).toBeGreaterThanOrEqual(i.qemu.totalTimeMs! * 0.9);
    expect(i.qemu.ramBytes!).toBeGreaterThan(1 * MiB);
    expect(Date.parse(i.ping.maxGapEnd!)).toBeGreaterThan(Date.parse(i.ping.maxGapStart!));
  });

  it('block moved at least the data written to the disk; shared moved no disk bytes', () => {
    expect(it1('block').qemu.diskBytes!).toBeGreaterThanOrEqual(24 * MiB);
    expect(it1('block').mirrorMs!).toBeGreaterThan(0);
    expect(it1('shared').qemu.diskBytes).toBe(0);
    expect(it1('shared').mirrorMs).toBeNull();
  });

  it('the shared disk was on the NFS export; the block disk was local to the destination', () => {
    const shared = it1('shared');
    expect(shared.disk!.destination).toMatchObject({ onExport: true });
    if (results.environment.nfsClient === 'qemu') expect(shared.disk!.destination.driver).toBe('nfs');
    expect(shared.disk!.destination.filename).toContain(plan.nfsServer.instancesDir);
    const block = it1('block');
    expect(block.disk!.destination).toMatchObject({ onExport: false, driver: 'file' });
    expect(block.disk!.destination.filename).toContain(join(plan.labDir, 'nodes', 'compute1'));
  });

  it('prints the comparison with medians and the block/shared ratio', () => {
    expect(stdout).toMatch(/block\s+3\/3/);
    expect(stdout).toMatch(/shared\s+3\/3/);
    expect(stdout).toMatch(/block\/shared \(ratio of medians\): duration \d+\.\d+x/);
    expect(results.summary!.blockToSharedRatio.durationMs).toBeGreaterThan(0);
  });

  it('reports progress as plain step lines when not on a TTY', () => {
    expect(stderr).toMatch(/^\[1\/6\] block #1: controller -> compute1$/m);
    expect(stderr).toMatch(/^  disk mirror started \(65\.0 MiB\)$/m);
    expect(stderr).toMatch(/^  RAM copy started/m);
    expect(stderr).toMatch(/^  ok in [\d.]+ ms, qemu downtime/m);
  });

  it('the run took down the lab it raised: nothing is left', async () => {
    expect(await leftovers(plan)).toEqual([]);
    expect(existsSync(plan.labDir)).toBe(false);
  });
});
