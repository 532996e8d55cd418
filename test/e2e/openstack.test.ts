/**
 * The openstack lab profile (stack: openstack) on the real machine: its packages installed on
 * demand (`setup.sh --openstack`, a no-op once they are), the profile raised twice, first
 * running every service's migrations (its database cache removed first), then from that
 * cache; every service answering on the lab's addresses only, keystone's catalog, both
 * hypervisors and agents up in nova and neutron, the lab network and the guest image; the
 * nova driver (a guest booted through nova, block migration each way with every proof,
 * shared storage skipped for want of kernel NFS, a migration nova refuses); and after each
 * `down`, nothing of it left.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { execa } from 'execa';
import { cli, leftovers, onNode } from './helpers.ts';
import { loadTopology } from '../../lab/config/topology.ts';
import { planLab, type LabPlan } from '../../lab/provision/plan.ts';
import { databaseCache } from '../../lab/stack/openstack/cache.ts';
import { adminApi } from '../../lab/stack/openstack/stack.ts';
import type { LabInfo } from '../../lab/provision/provider.ts';
import { PORTS } from '../../lab/stack/openstack/config.ts';
import { providerFor } from '../../lab/provision/providers.ts';
import { createDriver } from '../../lab/migrate/registry.ts';
import { MigrationFailed } from '../../lab/migrate/types.ts';
import { labGuestSpec } from '../../lab/runner/guests.ts';
import { resolveBuild } from '../../lab/qemu/builds.ts';
import { scenarioSchema } from '../../lab/config/scenario.ts';

const topology = 'test/fixtures/devstack.lab.yaml';
let plan: LabPlan;
const hostFiles = ['/etc/nova/nova.conf', '/etc/keystone/keystone.conf', '/etc/neutron/neutron.conf', '/etc/passwd', '/usr/bin/mount'];
const digest = () => hostFiles.map((f) => createHash('sha256').update(readFileSync(f)).digest('hex'));
let before: string[];

const info = () => JSON.parse(readFileSync(plan.infoFile, 'utf8')) as LabInfo;
/** PIDs of every process in the lab's namespaces (for the leftovers check after down). */
async function labPids(): Promise<number[]> {
  const out: number[] = [];
  for (const n of [...plan.nodes.map((x) => x.netns), plan.observer.netns]) out.push(...(await execa('ip', ['netns', 'pids', n], { reject: false })).stdout.split('\n').filter(Boolean).map(Number));
  return out;
}

describe('the openstack lab profile', () => {
  beforeAll(async () => {
    const setup = await execa('bash', ['scripts/setup.sh', '--openstack'], { reject: false, all: true, timeout: 600_000 });
    expect(setup.exitCode, setup.all).toBe(0);
    plan = planLab(await loadTopology(topology));
    await cli(['down', topology]);
    rmSync((await databaseCache(plan)).dir, { recursive: true, force: true });
    before = digest();
  }, 660_000);
  afterAll(async () => {
    await cli(['down', topology]);
  }, 60_000);

  it('comes up the first time by running every migration, and goes without a trace', async () => {
    const up = await cli(['up', topology], { timeoutMs: 300_000 });
    expect(up.exitCode, up.all).toBe(0);
    const s = info().stack!;
    expect(s.databasesCached).toBe(false);
    for (const step of ['keystone db', 'nova db', 'neutron db', 'glance db', 'placement db']) expect(s.startMs[step], step).toBeGreaterThan(0);
    const api = await adminApi(plan);
    expect(await api.authenticate()).toMatch(/^gAAAA/); // a fernet token
    const pids = await labPids();
    expect(pids.length).toBeGreaterThan(20);
    const down = await cli(['down', topology]);
    expect(down.exitCode, down.all).toBe(0);
    expect(await leftovers(plan, pids)).toEqual([]);
    expect(digest()).toEqual(before);
  }, 320_000);

  describe('from its database cache', () => {
    let upMs: number;
    let up: Awaited<ReturnType<typeof cli>>;
    beforeAll(async () => {
      const t0 = performance.now();
      up = await cli(['up', topology], { timeoutMs: 300_000 });
      upMs = performance.now() - t0;
      expect(up.exitCode, up.all).toBe(0);
      expect(up.all).toContain('loading the databases of an earlier bring-up');
    }, 320_000);

    it('loads the databases instead of migrating them, with the same passwords, and is up within the 90 s target', () => {
      const s = info().stack!;
      expect(s.databasesCached).toBe(true);
      expect(s.startMs['nova db']).toBeUndefined();
      expect(s.startMs['databases from cache']).toBeGreaterThan(0);
      // a figure to watch, not a benchmark: the target, with room for a busy machine
      expect(s.upMs).toBeLessThan(120_000);
      expect(upMs).toBeGreaterThan(s.upMs);
    });

    it('every service listens on its node\'s lab address (loopback only for epmd and rpcbind), nowhere else', async () => {
      for (const n of plan.nodes) {
        const ss = await onNode(plan, n.name, ['ss', '-Hltnp']);
        for (const line of ss.stdout.split('\n').filter(Boolean)) {
          const local = line.split(/\s+/)[3]!;
          const ok = local.startsWith(`${n.address}:`) || local.startsWith(`[::ffff:${n.address}]:`) || (/^(127\.0\.0\.1|\[::1\]):(111|4369)$/.test(local));
          expect(ok, `${n.name}: ${line}`).toBe(true);
        }
      }
      const ctl = (await onNode(plan, 'controller', ['ss', '-Hltn'])).stdout;
      for (const port of Object.values(PORTS)) expect(ctl, `port ${port}`).toContain(`10.79.0.11:${port}`);
      expect((await onNode(plan, 'compute1', ['ss', '-Hltn'])).stdout).toContain('10.79.0.12:16509');
    });

    it('keystone has the catalog; nova has both hypervisors and every control service up; neutron both agents', async () => {
      const api = await adminApi(plan);
      await api.authenticate();
      for (const type of ['identity', 'compute', 'image', 'network', 'placement']) expect(api.url(type)).toMatch(/^http:\/\/controller:\d+/);
      const hv = (await api.call<{ hypervisors: { hypervisor_hostname: string; state: string }[] }>('compute', 'GET', '/os-hypervisors')).body.hypervisors;
      expect(hv.filter((h) => h.state === 'up').map((h) => h.hypervisor_hostname).sort()).toEqual(['compute1', 'controller']);
      const svcs = (await api.call<{ services: { binary: string; host: string; state: string }[] }>('compute', 'GET', '/os-services')).body.services;
      expect(svcs.filter((x) => x.state === 'up').map((x) => `${x.binary}@${x.host}`).sort()).toEqual(['nova-compute@compute1', 'nova-compute@controller', 'nova-conductor@controller', 'nova-scheduler@controller']);
      const agents = (await api.call<{ agents: { host: string; alive: boolean; agent_type: string }[] }>('network', 'GET', '/v2.0/agents')).body.agents;
      expect(agents.filter((a) => a.alive && a.agent_type === 'Linux bridge agent').map((a) => a.host).sort()).toEqual(['compute1', 'controller']);
    });

    it('up prints how to use the openstack client as admin, and that works inside the controller', async () => {
      const s = info().stack!;
      expect(up.all).toContain(`shell --topology ${info().topologyFile} controller -- sh -c '. ${s.openrc} && openstack server list'`);
      const r = await cli(['shell', '--topology', topology, 'controller', '--', 'sh', '-c', `. ${s.openrc} && openstack hypervisor list -f value -c 'Hypervisor Hostname'`], { timeoutMs: 60_000 });
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stdout.split('\n').sort()).toEqual(['compute1', 'controller']);
    });

    it('the lab network (flat, no DHCP, no port security) and the guest image (raw kernel and initramfs, qcow2 root) were made through the APIs', async () => {
      const api = await adminApi(plan);
      const r = info().stack!.resources;
      const net = (await api.call<{ network: Record<string, unknown> }>('network', 'GET', `/v2.0/networks/${r.network}`)).body.network;
      expect(net).toMatchObject({ 'provider:network_type': 'flat', 'provider:physical_network': 'provider', port_security_enabled: false, shared: true });
      const subnet = (await api.call<{ subnet: Record<string, unknown> }>('network', 'GET', `/v2.0/subnets/${r.subnet}`)).body.subnet;
      expect(subnet).toMatchObject({ cidr: '10.79.0.0/24', enable_dhcp: false, gateway_ip: null });
      const img = (id: string) => api.call<Record<string, unknown>>('image', 'GET', `/v2/images/${id}`).then((x) => x.body);
      expect(await img(r.images.kernel)).toMatchObject({ disk_format: 'raw', status: 'active', size: readFileSync(info().image.kernel).length });
      expect(await img(r.images.ramdisk)).toMatchObject({ disk_format: 'raw', status: 'active' });
      expect(await img(r.images.guest)).toMatchObject({ disk_format: 'qcow2', status: 'active', kernel_id: r.images.kernel, ramdisk_id: r.images.ramdisk });
    });

    it('the nova driver: a guest booted through nova moves compute1 -> controller -> compute1 by block migration with every proof; shared storage is skipped, saying why', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'migralab-nova-'));
      try {
        const file = join(dir, 'nova.yaml');
        writeFileSync(
          file,
          [
            'name: nova-e2e',
            `topology: ${resolve(topology)}`,
            'strategies: [block, shared]',
            'drivers: [nova]',
            'bootOn: compute1',
            'repetitions: 2',
            'guest: { memory: 128MiB, disk: 64MiB, diskData: 16MiB }',
            'ping: { intervalMs: 10 }',
            '',
          ].join('\n'),
        );
        const { runScenario } = await import('../../lab/runner/run.ts');
        const r = await runScenario({ scenarioFile: file, resultsDir: join(dir, 'results') });
        const block = r.results.iterations.filter((i) => i.strategy === 'block');
        expect(block.map((i) => `${i.source}->${i.destination}`)).toEqual(['compute1->controller', 'controller->compute1']);
        for (const i of block) {
          expect(i.ok, JSON.stringify({ error: i.error, notes: i.notes, nova: i.nova })).toBe(true);
          expect(i.driver).toBe('nova');
          expect(i.verified).toEqual({ onDestination: true, sourceGone: true, diskIntact: true, ramIntact: true, answersPing: true });
          const n = i.nova!;
          expect(n.microversion).toBe('2.80');
          expect(n.blockMigration).toBe(true);
          expect(n.diskOverCommit).toBeNull();
          expect(n.migrationId).toEqual(expect.any(Number));
          expect(n.status).toBe('completed');
          expect(n.fault).toBeNull();
          expect(n.phases.map((p) => p.status)).toEqual(expect.arrayContaining(['running', 'completed']));
          expect(n.phaseSpans.length).toBe(n.phases.length - 1);
          // nova's whole operation holds libvirt's migration, which holds QEMU's downtime
          expect(i.durationMs).toBe(n.apiToActiveMs);
          expect(i.libvirt!.timeElapsedMs!).toBeGreaterThan(0);
          expect(n.apiToActiveMs!).toBeGreaterThan(i.libvirt!.timeElapsedMs!);
          expect(i.libvirt!.timeElapsedMs!).toBeGreaterThan(i.qemu.downtimeMs!);
          expect(i.libvirt!.diskProcessedBytes!).toBeGreaterThan(16 * 2 ** 20);
          expect(i.ping.maxGapMs!).toBeGreaterThan(0);
          expect(i.disk!.destination!.filename).toMatch(/\/instances\/[0-9a-f-]{36}\/disk$/);
        }
        // nova's ids: one server, a new migration each time
        expect(new Set(block.map((i) => i.nova!.serverId)).size).toBe(1);
        expect(block[1]!.nova!.migrationId).toBeGreaterThan(block[0]!.nova!.migrationId!);
        const shared = r.results.iterations.filter((i) => i.strategy === 'shared');
        expect(shared.length).toBe(2);
        for (const i of shared) {
          expect(i.ok).toBe(false);
          expect(i.error).toMatch(/^skipped: .*kernel NFS.*this kernel has no NFS client.*block migration only/);
        }
        // the guests are gone from nova and from both hypervisors
        const api = await adminApi(plan);
        expect((await api.call<{ servers: unknown[] }>('compute', 'GET', '/servers?all_tenants=1')).body.servers).toEqual([]);
        for (const n of ['controller', 'compute1']) expect((await onNode(plan, n, ['virsh', '-c', 'qemu:///system', 'list', '--name'])).stdout.trim()).toBe('');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }, 300_000);

    it('a migration nova refuses (to a host it does not know) fails with nova\'s message, and the guest stays running on its source', async () => {
      const t = await loadTopology(topology);
      const lab = await providerFor(t).up(t, resolve(topology), () => {});
      try {
        expect(lab.alreadyUp).toBe(true);
        const driver = await createDriver('nova', lab);
        const source = lab.node('compute1');
        const spec = labGuestSpec(lab, { name: 'refused-vm', strategy: 'block', index: 7, memoryBytes: 128 * 2 ** 20, diskBytes: 64 * 2 ** 20, diskDataBytes: 0, build: await resolveBuild('system', t.paths.qemuCache) });
        const inst = await driver.launch(spec, source);
        try {
          const nowhere = { ...lab.node('controller'), name: 'nowhere' };
          const err = await driver.migrate(inst, nowhere, { timeoutMs: 60_000, tunables: scenarioSchema.parse({ name: 'x' }).tunables, copyMode: 'background' }).then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err).toBeInstanceOf(MigrationFailed);
          const f = err as MigrationFailed;
          expect(f.kind).toBe('refused');
          expect(f.message).toMatch(/nova refused the live migration to nowhere: HTTP 400: .*nowhere/);
          expect(f.guestState).toEqual({ node: 'compute1', status: 'running' });
          expect(f.nova).toMatchObject({ status: 'refused (HTTP 400)', location: { nova: 'compute1', hypervisor: { compute1: 'running', controller: 'gone' } } });
          expect(f.nova!.fault).toMatch(/nowhere/);
          // still the same guest, answering on its source
          expect(await inst.status()).toBe('running');
          await using sh = await inst.shell();
          expect((await sh.exec('cat /etc/hostname')).output.trim()).toBe('refused-vm');
        } finally {
          await driver.destroy(spec);
        }
        expect(await inst.gone()).toBe(true);
      } finally {
        lab.release();
      }
    }, 180_000);

    it('down stops every service and removes every namespace, mount, database and file; the host\'s own files are as they were', async () => {
      const pids = await labPids();
      const down = await cli(['down', topology]);
      expect(down.exitCode, down.all).toBe(0);
      expect(await leftovers(plan, pids)).toEqual([]);
      expect(digest()).toEqual(before);
    }, 60_000);
  });
});
