/**
 * `migralab doctor`: the tutorial's preconditions for live migration as named checks on
 * the lab's live nodes, each pass / fail / warn / skip with the reason and what to do.
 * `run` runs them first and stops (exit 3) on a failed one.
 */
import { join } from 'node:path';
import { diskFiles } from '../migrate/storage.ts';
import type { DriverName } from '../config/scenario.ts';
import type { LabNode, StartedLab } from '../provision/provider.ts';
import { knownIssues } from '../provision/environment.ts';
import { LIBVIRT_TCP_PORT } from '../migrate/libvirt/config.ts';
import { MIGRATION_PORT, NBD_PORT } from '../migrate/qemu/driver.ts';

export type CheckStatus = 'pass' | 'fail' | 'warn' | 'skip';

export interface Check {
  /** Stable name, e.g. `hosts-resolve` (scripts match on it). */
  name: string;
  title: string;
  status: CheckStatus;
  detail: string;
  /** What to do when it did not pass. */
  fix?: string;
}

export interface DoctorOptions {
  drivers: readonly DriverName[];
  /** The guest's virtual disk size (block migration needs room for it on the destination). */
  diskBytes: number;
  /** Its actual size (data in it), for nova's disk-over-commit meaning. */
  diskDataBytes: number;
  /** nova's disk_over_commit: count the actual size, not the virtual size. */
  diskOverCommit?: boolean;
  /** More ports the run migrates on (a drain's guests each have their own): probed like the defaults. */
  extraPorts?: readonly { port: number; what: string }[];
}

const out = async (n: LabNode, argv: string[]) => {
  const r = await n.transport.run(argv, { check: false, timeoutMs: 15_000 });
  return { ok: r.exitCode === 0, text: r.stdout.trim(), err: r.stderr.trim() };
};

const pairs = (nodes: readonly LabNode[]) => nodes.flatMap((a) => nodes.filter((b) => b !== a).map((b) => [a, b] as const));

async function same(title: string, name: string, nodes: readonly LabNode[], argv: string[], pick: (s: string) => string, fix: string): Promise<Check> {
  const seen = await Promise.all(nodes.map(async (n) => ({ n: n.name, v: pick((await out(n, argv)).text) || '(none)' })));
  const distinct = new Set(seen.map((s) => s.v));
  const detail = seen.map((s) => `${s.n}: ${s.v}`).join('; ');
  return distinct.size === 1 && !distinct.has('(none)') ? { name, title, status: 'pass', detail } : { name, title, status: 'fail', detail, fix };
}

export async function runDoctor(lab: StartedLab, o: DoctorOptions): Promise<Check[]> {
  const nodes = lab.computes;
  const checks: Check[] = [];
  const useLibvirt = o.drivers.includes('libvirt') || o.drivers.includes('nova'); // nova drives libvirt

  checks.push(await same('the same CPU model on every compute node', 'cpu-model', nodes, ['sh', '-c', 'grep -m1 "^model name" /proc/cpuinfo'], (s) => s.replace(/^model name\s*:\s*/, ''), 'live migration needs the same CPU type on both hosts (or a guest CPU model both have)'));
  const guestCpu = lab.info.environment.accelerator === 'kvm' ? 'host' : 'qemu64';
  const cpuUsable = await Promise.all(nodes.map(async (n) => ({ n: n.name, ok: guestCpu === 'host' || (await out(n, ['qemu-system-x86_64', '-cpu', 'help'])).text.includes(guestCpu) })));
  checks.push({
    name: 'guest-cpu',
    title: `the guest CPU model (${guestCpu}) usable on every node`,
    status: cpuUsable.every((c) => c.ok) ? 'pass' : 'fail',
    detail: cpuUsable.map((c) => `${c.n}: ${c.ok ? 'yes' : 'no'}`).join('; '),
    fix: 'install the same QEMU on every node',
  });
  checks.push(await same('the same QEMU version on every node', 'qemu-version', nodes, ['qemu-system-x86_64', '--version'], (s) => /version\s+(\S+)/.exec(s)?.[1] ?? '', 'install the same QEMU on every node (bash scripts/setup.sh)'));
  if (useLibvirt) checks.push(await same('the same libvirt version on every node', 'libvirt-version', nodes, ['libvirtd', '--version'], (s) => /(\d+\.\d+\.\d+)/.exec(s)?.[1] ?? '', 'install the same libvirt on every node'));
  else checks.push({ name: 'libvirt-version', title: 'the same libvirt version on every node', status: 'skip', detail: 'the libvirt driver is not used' });

  // Host names: the tutorial's /etc/hosts entries, both ways.
  const resolve = await Promise.all(
    pairs(nodes).map(async ([a, b]) => {
      const r = await out(a, ['getent', 'hosts', b.name]);
      const got = r.text.split(/\s+/)[0] ?? '';
      return { a: a.name, b: b.name, ok: got === b.address, got: got || 'nothing' };
    }),
  );
  checks.push({
    name: 'hosts-resolve',
    title: 'node host names resolve to each other\'s lab address, from each node',
    status: resolve.every((r) => r.ok) ? 'pass' : 'fail',
    detail: resolve.map((r) => `${r.a} → ${r.b}: ${r.got}${r.ok ? '' : ` (expected ${nodes.find((n) => n.name === r.b)!.address})`}`).join('; '),
    fix: 'add each node to the others\' /etc/hosts (e.g. "10.77.0.12 compute1"), as the tutorial does',
  });

  // Ports: a listener on the destination for each, reached from the other node.
  const ports = [
    { port: MIGRATION_PORT, what: 'migration (qemu driver)' },
    { port: NBD_PORT, what: 'NBD (block migration, qemu driver)' },
    ...(o.extraPorts ?? []),
  ];
  // one listener per destination and port at a time; the destinations in parallel
  const portRows = await Promise.all(
    nodes.map(async (b) => {
      const rows: { ok: boolean; text: string }[] = [];
      for (const a of nodes.filter((x) => x !== b))
        for (const p of ports) {
          const ok = await reachable(a, b, p.port);
          rows.push({ ok, text: `${a.name} → ${b.name}:${p.port} ${p.what}: ${ok ? 'open' : 'blocked'}` });
        }
      return rows;
    }),
  );
  const portResults = portRows.flat().map((r) => r.text);
  const portsOk = portRows.flat().every((r) => r.ok);
  checks.push({ name: 'migration-ports', title: 'migration and NBD ports reachable both ways', status: portsOk ? 'pass' : 'fail', detail: portResults.join('; '), fix: `open TCP ${ports.map((p) => p.port).join(', ')} between the nodes (a firewall or an nftables rule blocks them)` });
  if (useLibvirt) {
    const lv = await Promise.all(
      pairs(nodes).map(async ([a, b]) => {
        const r = await out(a, ['timeout', '5', 'virsh', '-c', `qemu+tcp://${b.name}/system`, 'version']);
        return { a: a.name, b: b.name, ok: r.ok, why: r.err.split('\n').pop() ?? '' };
      }),
    );
    checks.push({
      name: 'libvirt-tcp',
      title: `libvirt's TCP port (${LIBVIRT_TCP_PORT}) reachable both ways`,
      status: lv.every((x) => x.ok) ? 'pass' : 'fail',
      detail: lv.map((x) => `${x.a} → qemu+tcp://${x.b}/system: ${x.ok ? 'answers' : `no (${x.why})`}`).join('; '),
      fix: `start libvirtd with -l and listen_tcp = 1 on every node, and open TCP ${LIBVIRT_TCP_PORT} between them`,
    });
    checks.push({
      name: 'libvirt-auth',
      title: "libvirt's TCP listener without authentication",
      status: 'warn',
      detail: 'auth_tcp = "none" and listen_tls = 0 (the tutorial\'s settings): anyone who reaches the port controls the hypervisor. migralab applies them only inside the lab, bound to lab addresses',
      fix: 'on real hosts use TLS or SASL (listen_tls = 1, auth_tcp = "sasl")',
    });
  } else checks.push({ name: 'libvirt-tcp', title: "libvirt's TCP port reachable both ways", status: 'skip', detail: 'the libvirt driver is not used' });

  checks.push(await nfsCheck(lab));
  checks.push(...(await roomChecks(lab, o)));

  const issues = knownIssues({ qemuVersion: lab.info.environment.qemuVersion, accelerator: lab.info.environment.accelerator });
  checks.push({
    name: 'hypervisor-issues',
    title: 'known hypervisor issues',
    status: issues.length ? 'warn' : 'pass',
    detail: issues.length ? issues.map((i) => `${i.text} (${i.reference})`).join('; ') : `none known for QEMU ${lab.info.environment.qemuVersion} under ${lab.info.environment.accelerator.toUpperCase()}`,
    fix: 'use QEMU 9.0 or later (bash scripts/setup.sh installs 10.0 from Debian backports)',
  });
  return checks;
}

/** A TCP connection from a to b:port reaches a listener there (started for the test: busybox nc). */
async function reachable(a: LabNode, b: LabNode, port: number): Promise<boolean> {
  const listener = await b.transport.spawn(['timeout', '5', 'busybox', 'nc', '-l', '-p', String(port)], { logFile: '/dev/null' });
  try {
    // the listener takes a moment to start; a dropped SYN times out after 0.5 s
    for (let i = 0; i < 8; i++) {
      const r = await a.transport.run(['timeout', '0.5', 'bash', '-c', `echo x >/dev/tcp/${b.address}/${port}`], { check: false });
      if (r.exitCode === 0) return true;
      await new Promise((res) => setTimeout(res, 100));
    }
    return false;
  } finally {
    await listener.signal('SIGKILL');
  }
}

/** nova CI's touch test: every client writes through NFS and the server sees it, and the other way round. */
async function nfsCheck(lab: StartedLab): Promise<Check> {
  const title = 'the NFS export visible and writable from both sides';
  const server = lab.nodes.find((n) => n.plan.roles.includes('nfs-server'))!;
  const clients = lab.nodes.filter((n) => n.plan.roles.includes('nfs-client'));
  const results: string[] = [];
  let ok = true;
  for (const c of clients) {
    const name = `.doctor-${c.name}-${process.pid}`;
    const onServer = join(lab.info.nfs.exportPath, name);
    const viaNfs = (f: string) => (lab.info.nfs.client === 'kernel' ? join(lab.info.nfs.mountPoint!, f) : `nfs://${server.name}${join(lab.info.nfs.exportPath, f)}`);
    const w = lab.info.nfs.client === 'kernel' ? await out(c, ['touch', viaNfs(name)]) : await out(c, ['qemu-img', 'create', '-q', '-f', 'raw', viaNfs(name), '1M']);
    const seen = await server.transport.exists(onServer);
    await server.transport.writeFile(`${onServer}-back`, 'x', { mode: 0o644 });
    const back = lab.info.nfs.client === 'kernel' ? await out(c, ['cat', viaNfs(`${name}-back`)]) : await out(c, ['qemu-img', 'info', viaNfs(`${name}-back`)]);
    await server.transport.remove(onServer);
    await server.transport.remove(`${onServer}-back`);
    const fine = w.ok && seen && back.ok;
    ok &&= fine;
    results.push(`${c.name} → ${server.name}: ${w.ok && seen ? 'writes' : `cannot write (${w.err.split('\n').pop() || 'not seen on the server'})`}; ${server.name} → ${c.name}: ${back.ok ? 'reads' : `cannot read (${back.err.split('\n').pop()})`}`);
  }
  return {
    name: 'nfs-export',
    title,
    status: ok ? 'pass' : 'fail',
    detail: `${lab.info.nfs.exportPath} on ${server.name}, client ${lab.info.nfs.client}: ${results.join('; ')}`,
    fix: `check that the NFS server runs on ${server.name} (ganesha or nfsd, with rpcbind for NFSv3) and exports its instances directory rw,no_root_squash to the lab network`,
  };
}

/** Room on every possible destination for a block migration (nova's disk-over-commit meaning). */
async function roomChecks(lab: StartedLab, o: DoctorOptions): Promise<Check[]> {
  const need = o.diskOverCommit ? o.diskDataBytes : o.diskBytes;
  const what = o.diskOverCommit ? `its actual size (${mib(o.diskDataBytes)}; disk-over-commit on)` : `its virtual size (${mib(o.diskBytes)}; disk-over-commit off)`;
  const rows = await Promise.all(
    lab.computes.map(async (n) => {
      const dir = join(n.plan.dir, 'local');
      await n.transport.mkdir(dir);
      const r = await out(n, ['df', '--output=avail', '-B1', dir]);
      const avail = Number(r.text.split('\n').pop());
      return { n: n.name, avail: Number.isFinite(avail) ? avail : null, dir };
    }),
  );
  const bad = rows.filter((r) => r.avail === null || r.avail < need + 64 * 1024 ** 2);
  return [
    {
      name: 'destination-room',
      title: `room for a block-migrated disk (${diskFiles.disk0.file}) on every destination`,
      status: bad.length ? 'fail' : 'pass',
      detail: `needs ${what} + 64 MiB; ${rows.map((r) => `${r.n} ${r.dir}: ${r.avail === null ? 'unknown' : mib(r.avail)} free`).join('; ')}`,
      fix: 'free space on the destination, use a smaller disk, or (as nova) count only the data in it with disk-over-commit',
    },
  ];
}

const mib = (b: number) => `${(b / 1024 ** 2).toFixed(0)} MiB`;

/** The checks as a table for a terminal. */
export function formatChecks(checks: readonly Check[]): string {
  const mark: Record<CheckStatus, string> = { pass: 'PASS', fail: 'FAIL', warn: 'WARN', skip: 'skip' };
  return checks.map((c) => `${mark[c.status]}  ${c.name.padEnd(18)} ${c.title}\n      ${c.detail}${c.status === 'fail' || c.status === 'warn' ? `\n      → ${c.fix ?? ''}` : ''}`).join('\n');
}
