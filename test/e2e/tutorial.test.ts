/**
 * `migralab tutorial`: the classic live-migration tutorial walked on a real lab. --auto runs it
 * straight through (what a script or CI does); on a terminal it waits for Enter between steps.
 */
import { describe, it, expect, beforeAll } from 'vitest';
import { execa } from 'execa';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cli, labScratch, leftovers, testPlan, testTopologyFile } from './helpers.ts';
import type { LabPlan } from '../../lab/provision/plan.ts';
import type { Results } from '../../lab/results/schema.ts';

let plan: LabPlan;
beforeAll(async () => {
  plan = await testPlan();
});

/** The text of step N of the tutorial's output, up to the next step. */
function step(out: string, n: number): string {
  const start = out.indexOf(`━━ Step ${n} of 5`);
  expect(start, `step ${n} in the output`).toBeGreaterThanOrEqual(0);
  const next = out.indexOf('━━ ', start + 5);
  return out.slice(start, next < 0 ? undefined : next);
}

describe('migralab tutorial --auto (libvirt driver, as the tutorial)', () => {
  // each: the run must raise the lab itself (it takes down only a lab it raised)
  const scratch = labScratch('mltutorial-', { each: true });

  it('walks the five steps with real output, two real migrations watched by a live ping, and leaves nothing behind', { timeout: 240_000 }, async () => {
    const r = await cli(['tutorial', '--auto', '--topology', testTopologyFile, '--results-dir', scratch.dir], { timeoutMs: 230_000 });
    const out = r.stdout;
    expect(r.exitCode, r.all).toBe(0);

    // 1: the hosts entries each node really has, the versions, doctor's checks
    const s1 = step(out, 1);
    expect(s1).toMatch(/^compute1# cat \/etc\/hosts$/m);
    expect(s1).toMatch(/^ {2}10\.78\.0\.11\tcontroller$/m);
    expect(s1).toMatch(/^ {2}10\.78\.0\.12\tcompute1$/m);
    expect(s1).toMatch(/^compute1# getent hosts controller\n {2}10\.78\.0\.11\s+controller$/m);
    expect(s1).toMatch(/libvirtd \(libvirt\) \d+\.\d+/);
    expect(s1).toMatch(/PASS\s+hosts-resolve/);

    // 2: libvirtd's TCP listener, configured as the tutorial says, listening on the lab address
    const s2 = step(out, 2);
    expect(s2).toMatch(/^ {2}libvirtd_opts="-d -l"$/m);
    expect(s2).toMatch(/^ {2}listen_tcp = 1$/m);
    expect(s2).toMatch(/^ {2}listen_tls = 0$/m);
    expect(s2).toMatch(/^ {2}auth_tcp = "none"$/m);
    expect(s2).toMatch(/LISTEN .*10\.78\.0\.11:16509/);
    expect(s2).toMatch(/Running hypervisor: QEMU \d+/);

    // 3 and 5: the migrations, the virsh command really sent, the ping's replies live
    const s3 = step(out, 3);
    expect(s3).toMatch(/migralab sends: virsh .* migrate --live --p2p .*--copy-storage-all .* qemu\+tcp:\/\/controller\/system/);
    expect(s3).toMatch(/^ {2}64 bytes from 10\.78\.0\.\d+: icmp_seq=\d+ ttl=64 time=[\d.]+ ms$/m);
    expect(s3).toMatch(/The migration completed: the guest runs on controller/);
    expect(s3).toMatch(/largest gap between ping replies \(the measuring ping at 5 ms\): [\d.]+ ms/);
    const s5 = step(out, 5);
    expect(s5).toMatch(/migralab sends: virsh .* migrate --live --p2p /);
    expect(s5).not.toMatch(/--copy-storage-all .* \(on compute1\)/);
    expect(s5).toMatch(/icmp_seq=\d+ ttl=64 time=/);
    expect(s5).toMatch(/The migration completed: the guest runs on controller/);

    // 4: the export as the NFS server offers it, asked for by showmount; the tutorial's path in both nodes
    const s4 = step(out, 4);
    expect(s4).toMatch(/^compute1# showmount -e controller\n {2}Export list for controller:\n {2}\S+\/controller\/instances 10\.78\.0\.0\/24$/m);
    expect(s4).toMatch(/Path = \S+\/controller\/instances;/);
    // a file compute1 wrote through NFS, listed by the controller at the tutorial's path
    expect(s4).toMatch(/^compute1# qemu-img create -q -f qcow2 (nfs:\/\/controller\S+|\/opt\/stack\/data\/nova\/instances)\/tutorial-nfs-probe\.qcow2 16M$/m);
    expect(s4).toMatch(/^controller# ls -la \/opt\/stack\/data\/nova\/instances\n(?: {2}.*\n)* {2}.* tutorial-nfs-probe\.qcow2$/m);
    expect(s4).not.toMatch(/\(exit \d+\)/);
    expect(s4).toMatch(/mount -t nfs controller:\/opt\/stack\/data\/nova\/instances/);

    // the figures shown are the ones results.json holds
    for (const strategy of ['block', 'shared'] as const) {
      const file = join(scratch.dir, strategy, 'results.json');
      expect(existsSync(file), file).toBe(true);
      const it = (JSON.parse(readFileSync(file, 'utf8')) as Results).iterations;
      expect(it).toHaveLength(1);
      expect(it[0]!.ok).toBe(true);
      expect(it[0]!.source).toBe('compute1');
      expect(it[0]!.destination).toBe('controller');
      // the scenario the step ran stays beside its results, where results.json names it
      const asRun = (JSON.parse(readFileSync(file, 'utf8')) as Results).scenario.file;
      expect(asRun).toBe(join(scratch.dir, strategy, `tutorial-${strategy}.yaml`));
      expect(existsSync(asRun)).toBe(true);
      const section = strategy === 'block' ? s3 : s5;
      expect(section).toContain(`: ${it[0]!.ping.maxGapMs!.toFixed(1)} ms`);
      expect(section).toContain(`duration ${it[0]!.durationMs!.toFixed(1)} ms`);
    }
    expect(out).toMatch(/The two migrations side by side[\s\S]*duration \(migralab, request to completed\)\s+[\d.]+ ms\s+[\d.]+ ms\s+[\d.]+x/);
    expect(out).toMatch(/taking lab mltest down/);
    expect(await leftovers(plan)).toEqual([]);
  });

  it('refuses an unknown driver before anything starts', async () => {
    const r = await cli(['tutorial', '--auto', '--driver', 'xen', '--topology', testTopologyFile]);
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toMatch(/--driver: expected one of qemu, libvirt, got "xen"/);
    // nova is a driver, but not on the tutorial's two bare nodes: it says where nova runs
    const n = await cli(['tutorial', '--auto', '--driver', 'nova', '--topology', testTopologyFile]);
    expect(n.exitCode).toBe(2);
    expect(n.stderr).toContain('--driver: expected one of qemu, libvirt, got "nova" (nova runs in a lab with stack: openstack: migralab run scenarios/tutorial-nova.yaml)');
    expect(await leftovers(plan)).toEqual([]);
  });
});

/** The tutorial under script(1): a real pty on its stdin and stdout. */
function onTerminal() {
  const proc = execa('script', ['-qfec', `node scripts/migralab.js tutorial --driver qemu --topology ${testTopologyFile}`, '/dev/null'], { reject: false, all: true, stdin: 'pipe' });
  const o = { proc, seen: '' };
  proc.all!.on('data', (d: Buffer) => (o.seen += d.toString()));
  const waitFor = async (re: RegExp, ms: number) => {
    const until = Date.now() + ms;
    while (!re.test(o.seen)) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${re}; output so far:\n${o.seen}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return Object.assign(o, { waitFor });
}

describe('migralab tutorial on a terminal', () => {
  labScratch('mltutorial-tty-', { each: true });

  it('Ctrl-C at the prompt takes the lab down and exits 130', { timeout: 180_000 }, async () => {
    const t = onTerminal();
    await t.waitFor(/\[Enter: next step, q: stop here\]/, 120_000);
    t.proc.stdin!.write('\x03');
    const r = await t.proc;
    expect(r.exitCode, t.seen).toBe(130);
    expect(t.seen).toContain('taking lab mltest down');
    expect(t.seen).not.toContain('Step 2 of 5');
    expect(await leftovers(plan)).toEqual([]);
  });

  it('waits at the prompt after step 1, goes on with Enter, stops with q (exit 0, lab down)', { timeout: 180_000 }, async () => {
    // a real pty: script(1) gives the tutorial a terminal on stdin
    const proc = execa('script', ['-qfec', `node scripts/migralab.js tutorial --driver qemu --topology ${testTopologyFile}`, '/dev/null'], { reject: false, all: true, stdin: 'pipe' });
    let seen = '';
    proc.all!.on('data', (d: Buffer) => (seen += d.toString()));
    const waitFor = async (re: RegExp, ms: number) => {
      const until = Date.now() + ms;
      while (!re.test(seen)) {
        if (Date.now() > until) throw new Error(`timed out waiting for ${re}; output so far:\n${seen}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    const prompts = () => (seen.match(/\[Enter: next step, q: stop here\]/g) ?? []).length;
    await waitFor(/\[Enter: next step, q: stop here\]/, 120_000);
    // it waits: no step 2 while nobody presses Enter
    await new Promise((r) => setTimeout(r, 2000));
    expect(seen).not.toContain('Step 2 of 5');
    expect(prompts()).toBe(1);
    proc.stdin!.write('\r');
    await waitFor(/Step 2 of 5/, 30_000);
    await waitFor(/\[Enter: next step, q: stop here\][\s\S]*\[Enter: next step, q: stop here\]/, 60_000);
    expect(seen).not.toContain('Step 3 of 5');
    proc.stdin!.write('q\r');
    const r = await proc;
    expect(r.exitCode, seen).toBe(0);
    expect(seen).toContain('stopped.');
    expect(seen).not.toContain('Step 3 of 5');
    expect(await leftovers(plan)).toEqual([]);
  });
});
