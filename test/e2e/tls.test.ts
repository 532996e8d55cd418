/**
 * security.tls: psk on the real lab: the migration stream's tls-creds read back from the source,
 * and the NBD export of a block migration refusing a client that does not speak TLS (while a
 * migration in the clear accepts it), cells of one run interleaved, nothing left after.
 */
import { describe, it, expect } from 'vitest';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { cli, labScratch, leftovers, onNode, testPlan, testTopologyFile } from './helpers.ts';
import { NBD_PORT } from '../../lab/migrate/qemu/driver.ts';

describe('migration over TLS (security.tls: psk)', () => {
  const scratch = labScratch('mltls-');

  it('the NBD export refuses a plaintext client under psk and accepts it in the clear; tls-creds in effect as asked; a guest that came over TLS leaves in the clear', async () => {
    const plan = await testPlan();
    const { runScenario } = await import('../../lab/runner/run.ts');
    const probes: Promise<{ index: number; exitCode: number; out: string }>[] = [];
    let index = 0;
    let sawMirror = false;
    const r = await runScenario({
      scenarioFile: 'test/fixtures/tls.yaml',
      resultsDir: scratch.dir,
      keepLab: true,
      iterationHooks: {
        migrationEvents: {
          // the mirrors are in sync and the export is still up while the RAM moves
          phase: (phase) => {
            if (phase === 'mirror') sawMirror = true;
            if (phase !== 'ram') return;
            const i = index++;
            const block = sawMirror;
            sawMirror = false;
            if (!block) return;
            probes.push(
              (async () => {
                // the destination is the node whose export answers at all (the other refuses the connection)
                for (const n of plan.nodes) {
                  const q = await onNode(plan, 'controller', ['qemu-img', 'info', '--image-opts', `driver=nbd,host=${n.address},port=${NBD_PORT},export=disk0`]);
                  const out = `${q.stdout}${q.stderr}`;
                  if (!/Connection refused/.test(out)) return { index: i, exitCode: q.exitCode ?? -1, out };
                }
                return { index: i, exitCode: -1, out: 'no node exported disk0' };
              })(),
            );
          },
        },
      },
    });
    const its = r.results.iterations;
    const cells = ['block, security.tls=none', 'shared, security.tls=none', 'block, security.tls=psk', 'shared, security.tls=psk'];
    expect(its.map((i) => `${i.cell?.label}: ${i.ok}`)).toEqual([...cells, ...cells].map((c) => `${c}: true`));
    // read back from QEMU, not from the scenario
    expect(its.map((i) => i.tunables?.tls)).toEqual([false, false, true, true, false, false, true, true]);
    const seen = await Promise.all(probes);
    expect(seen.map((p) => p.index)).toEqual(its.flatMap((i, n) => (i.strategy === 'block' ? [n] : [])));
    for (const p of seen) {
      if (its[p.index]!.cell?.label.endsWith('psk')) {
        expect(p.exitCode, p.out).not.toBe(0);
        expect(p.out).toMatch(/TLS/);
      } else expect(p.exitCode, p.out).toBe(0);
    }
    // the lab is still up: the guests are gone and so is everything the migrations started (the
    // NFS watchers' holders once outlived their kill, and kept the run from exiting)
    for (const n of plan.nodes.filter((x) => x.name !== 'controller')) expect((await execa('ip', ['netns', 'pids', n.netns])).stdout.trim(), n.name).toBe('');
    // one pre-shared key for the lab, the same on both nodes, readable by root alone
    const keys = plan.nodes.map((n) => join(n.dir, 'tls', 'keys.psk'));
    expect(keys.map((k) => (statSync(k).mode & 0o777).toString(8))).toEqual(['600', '600']);
    expect(new Set(keys.map((k) => readFileSync(k, 'utf8'))).size).toBe(1);
    expect(readFileSync(keys[0]!, 'utf8')).toMatch(/^migralab:[0-9a-f]{64}\n$/);
    expect(await leftovers(plan)).not.toEqual([]);
    const d = await cli(['down', testTopologyFile]);
    expect(d.exitCode).toBe(0);
    expect(await leftovers(plan)).toEqual([]);
  }, 240_000);
});
