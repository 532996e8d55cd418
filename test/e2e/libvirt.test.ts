/**
 * The tutorial's own stack on the real test lab: libvirtd on both nodes listening on TCP
 * with the tutorial's configuration, both strategies through `virsh migrate` by host name
 * with every proof, libvirt's own figures next to migralab's; then every doctor check
 * made to fail on purpose, and named.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { cli, leftovers, onNode, runFixture, testPlan, testTopologyFile } from './helpers.ts';
import type { Results } from '../../lab/results/schema.ts';
import type { LabPlan } from '../../lab/provision/plan.ts';
import type { Check } from '../../lab/doctor/checks.ts';

let plan: LabPlan;
/** The host's own libvirtd.conf before the lab (null: none), to show the lab leaves it alone. */
let hostLibvirtdConf: string | null;

describe('both strategies through libvirt', () => {
  let results: Results;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    plan = await testPlan();
    const f = await runFixture('test/fixtures/libvirt.yaml');
    ({ results, cleanup } = f);
    expect(f.run.exitCode, f.run.all).toBe(0);
  }, 300_000);
  afterAll(async () => {
    await cleanup();
    expect(await leftovers(plan)).toEqual([]);
  });

  it('every migration has the same proofs as the qemu driver\'s', () => {
    expect(results.iterations).toHaveLength(4);
    for (const i of results.iterations) {
      expect(i.driver).toBe('libvirt');
      expect(i.ok, `${i.strategy} #${i.repetition}: ${i.error}`).toBe(true);
      expect(i.verified).toEqual({ onDestination: true, sourceGone: true, diskIntact: true, ramIntact: true, answersPing: true });
      expect(i.guestOn).toEqual({ node: i.destination, status: 'running' });
    }
    expect(results.environment.libvirtVersion).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('block copies the disk (and the vfat config drive) to the destination; shared leaves it on the export, reached over NFS', () => {
    for (const i of results.iterations.filter((x) => x.strategy === 'block')) {
      expect(i.disk!.destination).toMatchObject({ driver: 'file', onExport: false });
      expect(i.disk!.destination.filename).toContain(`/nodes/${i.destination}/local/`);
      expect(i.libvirt!.diskProcessedBytes).toBeGreaterThanOrEqual(64 * 2 ** 20);
    }
    for (const i of results.iterations.filter((x) => x.strategy === 'shared')) {
      expect(i.disk!.destination).toMatchObject({ driver: 'nfs', onExport: true });
      expect(i.libvirt!.diskProcessedBytes).toBe(0);
    }
  });

  it("libvirt's own figures are there and agree with migralab's views", () => {
    for (const i of results.iterations) {
      const lv = i.libvirt!;
      expect(lv.timeElapsedMs).toBeGreaterThan(0);
      expect(lv.downtimeMs).toBeGreaterThan(0);
      expect(lv.memoryProcessedBytes).toBeGreaterThan(1 * 2 ** 20);
      expect(lv.iterations).toBeGreaterThanOrEqual(1);
      // libvirt's job is inside the virsh call that the harness timed
      expect(lv.timeElapsedMs!).toBeLessThanOrEqual(i.durationMs!);
      expect(i.qemu.downtimeMs).toBe(lv.downtimeMs);
      // the guest was really paused at least that long, and the network saw it
      expect(i.ping.maxGapMs!).toBeGreaterThanOrEqual(lv.downtimeMs! - 1);
      expect(i.crossCheck ?? []).toEqual([]);
      expect(i.timeline!.samples!.length).toBeGreaterThan(0);
    }
  });
});

describe('migralab doctor names every precondition that fails', () => {
  const doctor = async () => {
    const r = await cli(['doctor', testTopologyFile, '--driver', 'qemu', 'libvirt', '--json']);
    const checks = JSON.parse(r.stdout) as Check[];
    return { exitCode: r.exitCode, checks, status: (name: string) => checks.find((c) => c.name === name)?.status, all: r.all };
  };
  beforeAll(async () => {
    plan = await testPlan();
    await cli(['down', testTopologyFile]);
    hostLibvirtdConf = existsSync('/etc/libvirt/libvirtd.conf') ? readFileSync('/etc/libvirt/libvirtd.conf', 'utf8') : null;
    const up = await cli(['up', testTopologyFile]);
    expect(up.exitCode, up.all).toBe(0);
  }, 120_000);
  afterAll(async () => {
    await cli(['down', testTopologyFile]);
    expect(await leftovers(plan)).toEqual([]);
  });

  it('passes on a healthy lab (with the tutorial\'s unauthenticated listener as a warning), exit 0', async () => {
    const d = await doctor();
    expect(d.exitCode, d.all).toBe(0);
    for (const c of d.checks) expect(['pass', 'warn', 'skip'], `${c.name}: ${c.detail}`).toContain(c.status);
    expect(d.status('libvirt-auth')).toBe('warn');
    // libvirtd really listens on the lab address only, with the tutorial's file
    const ss = await onNode(plan, 'controller', ['ss', '-Hltn', 'sport', '=', ':16509']);
    expect(ss.stdout).toContain('10.78.0.11:16509');
    expect(ss.stdout).not.toMatch(/(\*|0\.0\.0\.0|\[::\]):16509/);
    const conf = await onNode(plan, 'controller', ['cat', '/etc/libvirt/libvirtd.conf']);
    expect(conf.stdout).toMatch(/^listen_tcp = 1$/m);
    expect(conf.stdout).toMatch(/^auth_tcp = "none"$/m);
    expect((await onNode(plan, 'compute1', ['cat', '/etc/default/libvirt-bin'])).stdout).toContain('libvirtd_opts="-d -l"');
    // ...while the host's own /etc/libvirt is as it was: no such file, or (libvirt-daemon-system, which
    // the openstack profile's packages bring) the package's own, without the tutorial's listener
    expect(existsSync('/etc/libvirt/libvirtd.conf') ? readFileSync('/etc/libvirt/libvirtd.conf', 'utf8') : null).toBe(hostLibvirtdConf);
    if (hostLibvirtdConf !== null) expect(hostLibvirtdConf).not.toMatch(/^listen_tcp = 1$/m);
  }, 120_000);

  it('a missing /etc/hosts entry: hosts-resolve fails, exit 3; and run refuses before any guest starts', async () => {
    const node = plan.nodes.find((n) => n.name === 'compute1')!;
    const before = readFileSync(node.hostsFile, 'utf8');
    writeFileSync(node.hostsFile, before.split('\n').filter((l) => !l.endsWith('\tcontroller')).join('\n'));
    try {
      const d = await doctor();
      expect(d.exitCode).toBe(3);
      expect(d.status('hosts-resolve')).toBe('fail');
      expect(d.checks.find((c) => c.name === 'hosts-resolve')!.detail).toMatch(/compute1 → controller: nothing/);
      const run = await cli(['run', 'test/fixtures/small.yaml', '--results-dir', join(plan.stateRoot, '..', 'mltest-doctor-run')]);
      expect(run.exitCode, run.all).toBe(3);
      expect(run.stderr).toMatch(/hosts-resolve/);
      expect(run.stderr).toMatch(/--skip-doctor/);
    } finally {
      writeFileSync(node.hostsFile, before);
      await execa('rm', ['-rf', join(plan.stateRoot, '..', 'mltest-doctor-run')]);
    }
  }, 120_000);

  it("libvirt's TCP port blocked with nftables: libvirt-tcp fails; the migration port blocked: migration-ports fails", async () => {
    const nft = (node: string, rules: string) => execa('nsenter', [`--net=/run/netns/${plan.nodes.find((n) => n.name === node)!.netns}`, 'nft', '-f', '-'], { input: rules });
    const rules = (port: number) => `table inet mltestblock {\n chain input { type filter hook input priority 0; tcp dport ${port} drop; }\n}\n`;
    await nft('controller', rules(16509));
    try {
      const d = await doctor();
      expect(d.status('libvirt-tcp')).toBe('fail');
      expect(d.checks.find((c) => c.name === 'libvirt-tcp')!.detail).toMatch(/compute1 → qemu\+tcp:\/\/controller\/system: no/);
    } finally {
      await execa('nsenter', [`--net=/run/netns/${plan.nodes[0]!.netns}`, 'nft', 'delete', 'table', 'inet', 'mltestblock']);
    }
    await nft('compute1', rules(4444));
    try {
      const d = await doctor();
      expect(d.status('migration-ports')).toBe('fail');
      expect(d.checks.find((c) => c.name === 'migration-ports')!.detail).toMatch(/controller → compute1:4444 migration \(qemu driver\): blocked/);
    } finally {
      await execa('nsenter', [`--net=/run/netns/${plan.nodes[1]!.netns}`, 'nft', 'delete', 'table', 'inet', 'mltestblock']);
    }
    // a drain's guests migrate on ports of their own: the run probes those too, and refuses before any guest starts
    await nft('compute1', rules(4446));
    const dir = join(plan.stateRoot, '..', 'mltest-doctor-drain');
    try {
      await execa('mkdir', ['-p', dir]);
      writeFileSync(join(dir, 'drain.yaml'), `name: d\ntopology: ${join(process.cwd(), testTopologyFile)}\nstrategies: [shared]\nplacement: { drain: controller }\nguests: 2\nconcurrency: 1\n`);
      const run = await cli(['run', join(dir, 'drain.yaml'), '--results-dir', join(dir, 'r')]);
      expect(run.exitCode, run.all).toBe(3);
      expect(run.stderr).toMatch(/controller → compute1:4446 migration of drain guest 2: blocked/);
      expect(run.stderr).not.toMatch(/booting/);
    } finally {
      await execa('rm', ['-rf', dir]);
      await execa('nsenter', [`--net=/run/netns/${plan.nodes[1]!.netns}`, 'nft', 'delete', 'table', 'inet', 'mltestblock']);
    }
  }, 120_000);

  it('too little room on the destination: destination-room fails (virtual size), passes with disk-over-commit (actual size)', async () => {
    const node = plan.nodes.find((n) => n.name === 'compute1')!;
    const local = join(node.dir, 'local');
    await onNode(plan, 'compute1', ['mkdir', '-p', local]);
    await onNode(plan, 'compute1', ['mount', '-t', 'tmpfs', '-o', 'size=300m', 'mltest-small', local]);
    try {
      const d = await doctor();
      expect(d.status('destination-room')).toBe('fail');
      expect(d.checks.find((c) => c.name === 'destination-room')!.detail).toMatch(/compute1 .*: 300 MiB free/);
      const r = await cli(['doctor', testTopologyFile, '--disk-over-commit', '--json']);
      expect((JSON.parse(r.stdout) as Check[]).find((c) => c.name === 'destination-room')!.status).toBe('pass');
    } finally {
      await onNode(plan, 'compute1', ['umount', local]);
    }
  }, 120_000);

  it('the NFS server stopped: nfs-export fails, naming it', async () => {
    const ledger = JSON.parse(readFileSync(plan.ledgerFile, 'utf8')) as { resources: { kind: string; name: string; pid?: number }[] };
    const ganesha = ledger.resources.find((r) => r.kind === 'process' && r.name === 'ganesha')!;
    process.kill(ganesha.pid!, 'SIGKILL');
    const d = await doctor();
    expect(d.exitCode).toBe(3);
    expect(d.status('nfs-export')).toBe('fail');
    expect(d.checks.find((c) => c.name === 'nfs-export')!.fix).toMatch(/NFS server runs on controller/);
  }, 120_000);
});
