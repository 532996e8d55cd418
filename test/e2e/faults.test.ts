import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Ledger } from '../../lab/state/ledger.ts';
import type { IterationResult, Results } from '../../lab/results/schema.ts';
import { cli, leftovers, onNode, testPlan, testTopologyFile } from './helpers.ts';

// One run of every fault kind (test/fixtures/faults.yaml) on the real lab: the destination's
// QEMU killed and stopped, the destination's uplink cut, ganesha killed, the destination's
// block-migration directory filled up. Each must end as expected and say what happened.
describe('faults as scenario data', () => {
  let dir: string;
  let run: Awaited<ReturnType<typeof cli>>;
  let results: Results;
  let pids: number[] = [];
  const byCell = (label: string): IterationResult => {
    const it = results.iterations.find((i) => i.cell?.label === label);
    if (!it) throw new Error(`no iteration of cell ${label}: ${results.iterations.map((i) => i.cell?.label).join(' | ')}`);
    return it;
  };

  beforeAll(async () => {
    await cli(['down', testTopologyFile]);
    dir = mkdtempSync(join(tmpdir(), 'mlfaults-'));
    await cli(['up', testTopologyFile]);
    const plan = await testPlan();
    run = await cli(['run', 'test/fixtures/faults.yaml', '--results-dir', dir], { timeoutMs: 280_000 });
    pids = ((await Ledger.read(plan.ledgerFile))?.resources ?? []).flatMap((r) => (r.kind === 'process' && r.pid ? [r.pid] : []));
    results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8'));
  }, 300_000);

  afterAll(async () => {
    await cli(['down', testTopologyFile]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('exits 0: every faulted iteration ended as its cell expects, and the fault-free ones are ok', () => {
    expect(run.exitCode, run.all).toBe(0);
    expect(results.iterations).toHaveLength(11);
    for (const label of ['block', 'shared']) expect(byCell(label).ok).toBe(true);
    for (const i of results.iterations.filter((x) => x.fault)) {
      expect(i.expected?.met, `${i.cell?.label}: ${i.error} ${i.notes.join('; ')}`).toBe(true);
      expect(i.fault!.injectedAtMs).toBeGreaterThanOrEqual(0);
      expect(i.fault!.detail).toBeTruthy();
      expect(i.guestOn, i.cell?.label).toBeDefined();
    }
    expect(run.all).toMatch(/faults \(expected end/);
  });

  it.each([
    ['block, fault=kill-destination@ram', 'destination-died', 3000],
    ['shared, fault=kill-destination@ram', 'destination-died', 3000],
    ['block, fault=kill-destination@mirror', 'destination-died', 3000],
    // the stall limit (10 s) plus the probe delay and two looks
    ['block, fault=stop-destination@ram', 'destination-hung', 17_000],
    ['shared, fault=stop-destination@ram', 'destination-hung', 17_000],
    ['shared, fault=kill-nfs-server@ram', 'storage-lost', 3000],
    ['block, fault=fill-destination-disk@mirror', 'disk-full', 5000],
  ] as const)('%s: fails as %s within %d ms, the guest running on the source with its disk and RAM intact', (label, kind, withinMs) => {
    const i = byCell(label);
    expect(i.ok).toBe(false);
    expect(i.expected).toEqual({ outcome: 'stays-on-source', met: true });
    expect(i.failure?.kind, i.failure?.message).toBe(kind);
    expect(i.failure!.detectedAfterMs).toBeLessThan(withinMs);
    expect(i.failure!.detectedAfterMs).toBeGreaterThanOrEqual(i.fault!.injectedAtMs! - 50);
    expect(i.guestOn).toEqual({ node: i.source, status: 'running' });
    expect(i.verified).toMatchObject({ onDestination: false, diskIntact: true, ramIntact: true, answersPing: true });
    if (kind === 'storage-lost') expect(i.failure!.message).toMatch(/NFS server on controller .*2049/);
  });

  it('a cut link shorter than the stall limit is ridden out: the migration completes, proven like any other', () => {
    for (const label of ['block, fault=cut-link@ram,forMs=4000', 'shared, fault=cut-link@ram,forMs=4000']) {
      const i = byCell(label);
      expect(i.expected, label).toEqual({ outcome: 'completes', met: true });
      expect(i.ok).toBe(true);
      expect(i.verified).toMatchObject({ onDestination: true, sourceGone: true, diskIntact: true, ramIntact: true });
      expect(i.guestOn?.node).toBe(i.destination);
    }
    // the shared one went to the NFS server: its cut link hid the storage too, which is not storage lost
    expect(byCell('shared, fault=cut-link@ram,forMs=4000').destination).toBe('controller');
  });

  it('the lab is whole again after the faults (ganesha serving, the link up), and down leaves nothing', async () => {
    const plan = await testPlan();
    expect((await onNode(plan, 'controller', ['ss', '-Hltn', 'sport', '=', ':2049'])).stdout).toMatch(/LISTEN/);
    for (const n of ['controller', 'compute1']) {
      expect((await onNode(plan, n, ['ip', '-br', 'link', 'show', 'uplink'])).stdout, n).toMatch(/\bUP\b/);
      expect((await onNode(plan, n, ['cat', '/proc/self/mounts'])).stdout, n).not.toMatch(/migralab-fault/);
    }
    const d = await cli(['down', testTopologyFile]);
    expect(d.exitCode, d.all).toBe(0);
    expect(await leftovers(plan, pids)).toEqual([]);
  });
});
