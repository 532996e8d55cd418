import { describe, it, expect } from 'vitest';
import { readFileSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { Ledger } from '../../lab/state/ledger.ts';
import { cli, labScratch, leftovers, testPlan, testTopologyFile } from './helpers.ts';
import type { Results } from '../../lab/results/schema.ts';


async function until<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function qemuPids(ledgerFile: string): Promise<number[]> {
  const l = await Ledger.read(ledgerFile).catch(() => undefined);
  return (l?.resources ?? []).flatMap((r) => (r.kind === 'process' && r.name.startsWith('qemu:') && r.pid ? [r.pid] : []));
}

async function allPids(ledgerFile: string): Promise<number[]> {
  const l = await Ledger.read(ledgerFile).catch(() => undefined);
  return (l?.resources ?? []).flatMap((r) => (r.kind === 'process' && r.pid ? [r.pid] : []));
}

/**
 * Starts `migralab run ARGS`, sends Ctrl-C `afterMs` after `line` appeared in its output, and
 * expects exit 130 within a second; resolves with its log and the PIDs its ledger had.
 */
async function interruptAt(plan: { ledgerFile: string }, args: string[], line: string, afterMs: number) {
  const child = execa('node', ['scripts/migralab.js', 'run', ...args], { reject: false, all: true });
  let log = '';
  child.all!.on('data', (d: Buffer) => (log += d.toString()));
  await until(JSON.stringify(line), () => log.includes(line), 120_000);
  await new Promise((r) => setTimeout(r, afterMs));
  const pids = await allPids(plan.ledgerFile);
  const t0 = performance.now();
  child.kill('SIGINT');
  const r = await child;
  const ms = performance.now() - t0;
  expect(r.exitCode, log).toBe(130);
  expect(ms, log).toBeLessThan(1000);
  return { log, pids };
}

/** Starts `migralab run small.yaml` and resolves once its first migration began, with its log so far. */
async function runUntilFirstMigration(dir: string) {
  const child = execa('node', ['scripts/migralab.js', 'run', 'test/fixtures/small.yaml', '--results-dir', dir], { reject: false, all: true });
  const out = { child, log: '' };
  child.all!.on('data', (d: Buffer) => (out.log += d.toString()));
  await until('the first migration', () => out.log.includes('[1/'), 120_000);
  return out;
}

describe('failures, interruptions and crashes', () => {
  const scratch = labScratch('mlfail-', { each: true });

  it('a migration that fails leaves the guest running on the source, is recorded, and the exit code says so', async () => {
    const r = await cli(['run', 'test/fixtures/timeout.yaml', '--results-dir', scratch.dir]);
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stderr).toMatch(/2 of 2 migrations failed/);
    const res: Results = JSON.parse(readFileSync(join(scratch.dir, 'results.json'), 'utf8'));
    expect(res.iterations).toHaveLength(2);
    for (const i of res.iterations) {
      expect(i.ok).toBe(false);
      expect(i.error).toMatch(/timed out after 50 ms.*still running on controller/);
      expect(i.guestOn).toEqual({ node: 'controller', status: 'running' });
      expect(i.durationMs).toBeNull();
      expect(i.notes.join()).toMatch(/did not complete/);
    }
    expect(await leftovers(await testPlan())).toEqual([]);
  }, 120_000);

  it('Ctrl-C during a run stops it, writes partial results, and leaves nothing behind', async () => {
    const plan = await testPlan();
    const run = await runUntilFirstMigration(scratch.dir);
    const pids = await allPids(plan.ledgerFile);
    run.child.kill('SIGINT');
    const r = await run.child;
    expect(r.exitCode, run.log).toBe(130);
    expect(run.log).toMatch(/interrupted/);
    const res: Results = JSON.parse(readFileSync(join(scratch.dir, 'results.json'), 'utf8'));
    expect(res.interrupted).toBe(true);
    // the iteration in flight is kept, marked interrupted, with where the guest was left
    const last = res.iterations.at(-1)!;
    expect(last, JSON.stringify(res.iterations)).toMatchObject({ ok: false, failure: { kind: 'interrupted' } });
    expect(last.index).toBe(res.iterations.length - 1);
    expect(await leftovers(plan, pids)).toEqual([]);
  }, 180_000);

  it('Ctrl-C while the guests boot exits 130 within a second, with nothing left', async () => {
    const plan = await testPlan();
    // inside the boot (a restore from a snapshot: about 1.5 s here)
    const { log, pids } = await interruptAt(plan, ['test/fixtures/small.yaml', '--results-dir', scratch.dir], 'booting', 500);
    expect(log).not.toMatch(/\[1\//); // no migration was started
    expect(await leftovers(plan, pids)).toEqual([]);
  }, 180_000);

  it('Ctrl-C while the first guest of a size makes its booted snapshot exits 130 within a second, with nothing left and no snapshot', async () => {
    const plan = await testPlan();
    // a size no other test uses, its snapshot removed: this run must make it
    const snapshots = readdirSync(plan.imageCache).map((d) => join(plan.imageCache, d, 'snapshots'));
    for (const d of snapshots) for (const f of existsSync(d) ? readdirSync(d) : []) if (f.startsWith('176M-')) rmSync(join(d, f));
    const scenario = join(scratch.dir, 'snap.yaml');
    writeFileSync(scenario, `name: snap\ntopology: ${resolve('test/fixtures/test.lab.yaml')}\nstrategies: [shared]\nrepetitions: 1\nguest: { memory: 176MiB, disk: 64MiB, diskData: 8MiB }\n`);
    // inside the template's boot (about 10 s here)
    const { log, pids } = await interruptAt(plan, [scenario, '--results-dir', join(scratch.dir, 'r')], 'snapshot: booting a template 176 MiB guest', 1500);
    expect(pids.length).toBeGreaterThan(0);
    expect(log).not.toMatch(/made in/);
    expect(await leftovers(plan, pids)).toEqual([]);
    // neither a snapshot nor a half-written one is left
    for (const d of snapshots) expect((existsSync(d) ? readdirSync(d) : []).filter((f) => f.startsWith('176M-'))).toEqual([]);
  }, 180_000);

  it('down cleans up after the harness was killed with SIGKILL mid-run', async () => {
    const plan = await testPlan();
    const { child, log } = await runUntilFirstMigration(scratch.dir);
    // both guests' QEMUs are running (and recorded) when the harness dies
    await until('two QEMUs in the ledger', async () => (await qemuPids(plan.ledgerFile)).length >= 2, 10_000).catch(async (e) => {
      throw new Error(`${(e as Error).message}: ${readFileSync(plan.ledgerFile, 'utf8')}\n${log}`);
    });
    const pids = await allPids(plan.ledgerFile);
    child.kill('SIGKILL');
    await child;
    expect(existsSync(plan.ledgerFile)).toBe(true);
    const d = await cli(['down', testTopologyFile]);
    expect(d.exitCode, d.all).toBe(0);
    // the ping the harness had started in the observer namespace must be gone too
    expect(await leftovers(plan, pids)).toEqual([]);
    const ns = await execa('ip', ['netns', 'list']);
    expect(ns.stdout).not.toContain(`mlab-${plan.lab}-`);
  }, 180_000);

  it('a guest whose hypervisor died after a migration is replaced by a fresh boot, and the next iteration measures again', async () => {
    const plan = await testPlan();
    const { runScenario } = await import('../../lab/runner/run.ts');
    let killed: number | undefined;
    const r = await runScenario({
      scenarioFile: 'test/fixtures/replace.yaml',
      resultsDir: scratch.dir,
      iterationHooks: {
        // the guest's QEMU on the destination dies right after the first migration, before its checks
        afterMigration: async ({ index, instance }) => {
          if (index !== 0) return;
          killed = index;
          await instance.kill();
        },
      },
    });
    expect(killed).toBe(0);
    const [first, second] = r.results.iterations;
    expect(first!.ok).toBe(false);
    expect(first!.notes.join('\n')).toMatch(/guest shared-vm is gone from compute1 \(its hypervisor exited\) after iteration 1/);
    expect(second!.ok, JSON.stringify(second, null, 1)).toBe(true);
    expect(second!.notes.join('\n')).toMatch(/a fresh shared-vm was booted on compute1 before this iteration \(replacement 1\), because guest shared-vm is gone/);
    expect(second!.source).toBe('compute1');
    expect(r.failed).toBe(1);
    expect(await leftovers(plan)).toEqual([]);
  }, 180_000);

  it('a guest whose shell answers but whose network died is replaced before the next iteration', async () => {
    const plan = await testPlan();
    const { runScenario } = await import('../../lab/runner/run.ts');
    const r = await runScenario({
      scenarioFile: 'test/fixtures/shared3.yaml',
      resultsDir: scratch.dir,
      iterationHooks: {
        // what QEMU 7.2's lost writes did to one guest: its control shell answers, its eth0 does not
        afterMigration: async ({ index, instance }) => {
          if (index !== 0) return;
          await using sh = await instance.shell();
          await sh.exec('ip link set eth0 down');
        },
      },
    });
    const [first, second, third] = r.results.iterations;
    // it answered ping after the switchover, before the hook downed its network
    expect(first!.ok, JSON.stringify(first, null, 1)).toBe(true);
    expect(second!.ok).toBe(false);
    expect(JSON.stringify(second)).toMatch(/not migrated/);
    expect(third!.ok, JSON.stringify(third, null, 1)).toBe(true);
    expect(third!.notes.join('\n')).toMatch(/a fresh shared-vm was booted on (\w+) before this iteration \(replacement 1\), because guest shared-vm did not answer ping on \1 before iteration 2/);
    expect(r.failed).toBe(1);
    expect(await leftovers(plan)).toEqual([]);
  }, 180_000);
});

describe('rpcbind gone', () => {
  const scratch = labScratch('mlrpcbind-', { each: true });

  it('a shared migration whose destination cannot reach rpcbind fails at once as storage-lost, naming rpcbind, with the guest still running on the source', async () => {
    const plan = await testPlan();
    const { runScenario } = await import('../../lab/runner/run.ts');
    let killedAt: number | undefined;
    const r = await runScenario({
      scenarioFile: 'test/fixtures/shared3.yaml',
      resultsDir: scratch.dir,
      iterationHooks: {
        // rpcbind dies after the first migration: the NFS sessions already open do not need it, a new one does
        afterMigration: async ({ index }) => {
          if (index !== 0) return;
          const rpcbind = (await Ledger.read(plan.ledgerFile))!.resources.find((x) => x.kind === 'process' && x.name === 'rpcbind');
          if (rpcbind?.kind !== 'process' || !rpcbind.pid) throw new Error('no rpcbind in the ledger');
          process.kill(rpcbind.pid, 'SIGKILL');
          killedAt = Date.now();
        },
      },
    });
    expect(killedAt).toBeDefined();
    const [first, second, third] = r.results.iterations;
    expect(first!.ok, JSON.stringify(first, null, 1)).toBe(true);
    // back to the NFS server's own node: it opens the disk as a local file
    expect(second!.destination).toBe('controller');
    expect(second!.ok, JSON.stringify(second, null, 1)).toBe(true);
    expect(third!.destination).toBe('compute1');
    expect(third!.ok).toBe(false);
    expect(third!.failure?.kind, JSON.stringify(third, null, 1)).toBe('storage-lost');
    expect(third!.failure?.message).toMatch(/rpcbind on controller \(10\.78\.0\.11:111\) refuses connections/);
    expect(third!.guestOn).toEqual({ node: third!.source, status: 'running' });
    expect(third!.verified.answersPing).toBe(true);
    expect(third!.verified.diskIntact).toBe(true);
    // bounded: the iteration's whole window (ping start to its end) is seconds, not a timeout
    expect(third!.harness?.windowMs ?? Infinity).toBeLessThan(15_000);
    expect(await leftovers(plan)).toEqual([]);
  }, 180_000);
});
