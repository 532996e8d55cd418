import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { readFileSync, writeFileSync, mkdtempSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { Ledger } from '../../lab/state/ledger.ts';
import { bridgeMacFor } from '../../lab/net/address.ts';
import { cli, onNode, leftovers, testPlan, testTopologyFile } from './helpers.ts';
import type { LabPlan } from '../../lab/provision/plan.ts';

let plan: LabPlan;
let daemons: number[] = [];

describe('lab lifecycle (local provider, real namespaces and NFS server)', () => {
  beforeAll(async () => {
    plan = await testPlan();
    await cli(['down', testTopologyFile]);
  });
  afterAll(async () => {
    await cli(['down', testTopologyFile]);
  });

  it('refuses an invalid topology with file:line:col, exit 2, and starts nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mltopo-'));
    try {
      const bad = join(dir, 'bad.lab.yaml');
      writeFileSync(bad, readFileSync(testTopologyFile, 'utf8').replace('address: 10.78.0.12', 'address: 10.78.1.12'));
      const r = await cli(['up', bad]);
      expect(r.exitCode).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`${bad}:\\d+:\\d+ nodes\\[1\\]\\.address: expected an address inside 10\\.78\\.0\\.0/24`));
      expect(await leftovers(plan)).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('refuses to run without root, saying why, exit 3', async () => {
    const r = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'node', 'scripts/migralab.js', 'up', testTopologyFile], { reject: false });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toMatch(/needs root/);
    expect(await leftovers(plan)).toEqual([]);
  });

  it('up raises both nodes, the observer and the NFS server', async () => {
    const r = await cli(['up', testTopologyFile, '--json']);
    expect(r.exitCode, r.all).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.alreadyUp).toBe(false);
    expect(['kvm', 'tcg']).toContain(info.environment.accelerator);
    expect(['kernel', 'qemu']).toContain(info.environment.nfsClient);
    expect(info.nfs.exportPath).toBe(plan.nfsServer.instancesDir);
    const ledger = (await Ledger.read(plan.ledgerFile))!;
    expect(ledger.status).toBe('up');
    daemons = ledger.resources.flatMap((x) => (x.kind === 'process' && x.pid ? [x.pid] : []));
    expect(daemons.length).toBeGreaterThanOrEqual(1);
  });

  it('each node resolves the other by name and has its own host name', async () => {
    for (const [self, other, addr] of [
      ['controller', 'compute1', '10.78.0.12'],
      ['compute1', 'controller', '10.78.0.11'],
    ] as const) {
      expect((await onNode(plan, self, ['hostname'])).stdout).toBe(self);
      expect((await onNode(plan, self, ['getent', 'hosts', other])).stdout).toMatch(new RegExp(`^${addr.replace(/\./g, '\\.')}\\s+${other}`));
      const ping = await onNode(plan, self, ['ping', '-c', '1', '-W', '2', other]);
      expect(ping.exitCode, ping.stdout).toBe(0);
    }
  });

  it("a node's bridge keeps its own MAC when a port with a lower one joins (peers' neighbour caches stay right)", async () => {
    const mac = async () => (await onNode(plan, 'compute1', ['cat', '/sys/class/net/br0/address'])).stdout.trim();
    expect(await mac()).toBe(bridgeMacFor('10.78.0.12'));
    for (const argv of [['ip', 'tuntap', 'add', 'mlmactest', 'mode', 'tap'], ['ip', 'link', 'set', 'mlmactest', 'address', '02:00:00:00:00:01', 'master', 'br0', 'up']]) {
      expect((await onNode(plan, 'compute1', argv)).exitCode).toBe(0);
    }
    try {
      expect(await mac()).toBe(bridgeMacFor('10.78.0.12'));
    } finally {
      await onNode(plan, 'compute1', ['ip', 'link', 'del', 'mlmactest']);
    }
  });

  it('the NFS server listens on the controller address only and exports to the lab CIDR only', async () => {
    const ss = await onNode(plan, 'controller', ['ss', '-Hltn', 'sport', '=', ':2049']);
    expect(ss.stdout).toMatch(/10\.78\.0\.11\]?:2049/);
    expect(ss.stdout).not.toMatch(/(0\.0\.0\.0|\*|\[::\]):2049/);
    const conf = readFileSync(join(plan.nfsServer.dir, 'ganesha.conf'), 'utf8');
    expect(conf).toMatch(/Clients = 10\.78\.0\.0\/24;/);
    // the host itself has no route into the lab
    const host = await execa('ip', ['route', 'get', '10.78.0.11'], { reject: false });
    expect(host.stdout).not.toMatch(/dev br0/);
  });

  it("the lab's files are its own (0600, directories 0700) and every listener is on a lab address", async () => {
    // nsfs bind mounts (ns/) are the kernel's; a node's hosts file is bind-mounted over /etc/hosts and must stay readable inside it;
    // a node's /opt overlay (opt-overlay/upper is its /opt, 0755 like any /opt) sits in a 0700 directory
    const found = await execa('find', [plan.stateRoot, '(', '-path', '*/ns/*', '-o', '-path', '*/opt-overlay/*', ')', '-prune', '-o', '!', '-name', 'hosts', '-perm', '/077', '-print']);
    expect(found.stdout.trim(), 'readable by others').toBe('');
    expect((await execa('stat', ['-c', '%a', plan.stateRoot])).stdout).toBe('700');
    for (const node of ['controller', 'compute1']) {
      const addrs = (await onNode(plan, node, ['ip', '-4', '-o', 'addr', 'show'])).stdout.match(/inet (\S+)\//g)!.map((a) => a.slice(5, -1));
      // besides loopback, a node holds only its lab address: a wildcard listener there is reachable on the lab address alone
      expect(addrs.filter((a) => a !== '127.0.0.1')).toEqual([plan.nodes.find((n) => n.name === node)!.address]);
      const ss = (await onNode(plan, node, ['ss', '-Hltun'])).stdout.trim();
      for (const line of ss ? ss.split('\n') : []) expect(line, `${node}: ${line}`).toMatch(/(10\.78\.0\.\d+\]?|127\.0\.0\.1|\[::1\]|0\.0\.0\.0|\[::\]|\*):\d+/);
    }
    // a node's links have IPv6 link-local addresses too, so a wildcard is not the lab address alone:
    // rpcbind (under systemd-socket-activate) listens on the controller's lab address and loopback only
    const rpc = (await onNode(plan, 'controller', ['ss', '-Hltun', 'sport', '=', ':111'])).stdout.trim().split('\n');
    expect(rpc.length).toBeGreaterThanOrEqual(4);
    for (const line of rpc) expect(line).toMatch(/\s(10\.78\.0\.11|127\.0\.0\.1|\[::1\]):111\s/);
  });

  it('migralab shell runs a command inside a node and passes its exit code through', async () => {
    const h = await cli(['shell', 'controller', '--topology', testTopologyFile, '--', 'hostname']);
    expect(h.exitCode, h.all).toBe(0);
    expect(h.stdout.trim()).toBe('controller');
    const hosts = await cli(['shell', 'compute1', '--topology', testTopologyFile, '--', 'cat', '/etc/hosts']);
    expect(hosts.stdout).toMatch(/^10\.78\.0\.11\tcontroller$/m);
    const failed = await cli(['shell', 'compute1', '--topology', testTopologyFile, '--', 'sh', '-c', 'exit 7']);
    expect(failed.exitCode).toBe(7);
    const unknown = await cli(['shell', 'compute9', '--topology', testTopologyFile, '--', 'true']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toMatch(/no node compute9 in .*: expected one of controller, compute1, observer/);
  });

  it("each node's instances directory is at the tutorial's path, /opt/stack/data/nova/instances, and the host's /opt is untouched", async () => {
    const hostOpt = readdirSync('/opt').sort();
    for (const n of plan.nodes) {
      const probe = `tutorial-path-${n.name}`;
      const w = await cli(['shell', n.name, '--topology', testTopologyFile, '--', 'touch', `/opt/stack/data/nova/instances/${probe}`]);
      expect(w.exitCode, w.all).toBe(0);
      // the same directory as the node's instances directory, not a copy
      expect(existsSync(join(n.instancesDir, probe))).toBe(true);
      rmSync(join(n.instancesDir, probe));
      // the host's /opt stays readable inside the node (a QEMU build under /opt still runs)
      const ls = await cli(['shell', n.name, '--topology', testTopologyFile, '--', 'ls', '/opt']);
      expect(ls.stdout.split('\n').filter(Boolean).sort()).toEqual([...new Set([...hostOpt, 'stack'])].sort());
    }
    expect(existsSync('/opt/stack') && !hostOpt.includes('stack')).toBe(false);
    expect(readdirSync('/opt').sort()).toEqual(hostOpt);
  });

  it('compute1 writes a file through NFS that the controller sees', async () => {
    const name = 'e2e-nfs-probe.raw';
    const w = await onNode(plan, 'compute1', ['qemu-img', 'create', '-q', '-f', 'raw', `nfs://controller${plan.nfsServer.instancesDir}/${name}`, '2M']);
    expect(w.exitCode, w.stderr).toBe(0);
    expect(existsSync(join(plan.nfsServer.instancesDir, name))).toBe(true);
    rmSync(join(plan.nfsServer.instancesDir, name));
  });

  it('up again is a no-op', async () => {
    const t0 = performance.now();
    const r = await cli(['up', testTopologyFile]);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/already up/);
    const again = (await Ledger.read(plan.ledgerFile))!;
    expect(again.resources.flatMap((x) => (x.kind === 'process' && x.pid ? [x.pid] : []))).toEqual(daemons);
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it('status --json reports the lab up', async () => {
    const r = await cli(['status', testTopologyFile, '--json']);
    expect(r.exitCode).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.state).toBe('up');
    expect(s.info.nodes.map((n: { name: string }) => n.name)).toEqual(['controller', 'compute1']);
  });

  it('down removes every namespace, process, mount and file', async () => {
    const r = await cli(['down', testTopologyFile]);
    expect(r.exitCode).toBe(0);
    expect(await leftovers(plan, daemons)).toEqual([]);
    const s = JSON.parse((await cli(['status', testTopologyFile, '--json'])).stdout);
    expect(s.state).toBe('down');
  });

  it('up after a half-finished up (ledger says creating) cleans up and raises anew', async () => {
    expect((await cli(['up', testTopologyFile])).exitCode).toBe(0);
    const raw = JSON.parse(readFileSync(plan.ledgerFile, 'utf8'));
    raw.status = 'creating';
    writeFileSync(plan.ledgerFile, JSON.stringify(raw));
    const r = await cli(['up', testTopologyFile]);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/half up/);
    expect((await Ledger.read(plan.ledgerFile))!.status).toBe('up');
    expect((await cli(['down', testTopologyFile])).exitCode).toBe(0);
    expect(await leftovers(plan)).toEqual([]);
  });
});
