/**
 * The ssh provider end to end over ssh2, against the lab's own sshd hosts
 * (test/fixtures/hosts.lab.yaml: bare namespaces with an OpenSSH server each), reached from
 * inside their observer namespace: plan, apply, a scenario, down, and every file the plan
 * changed back byte for byte; a changed host key refused; a connection killed mid-run.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execa } from 'execa';
import { cli } from './helpers.ts';
import type { Results } from '../../lab/results/schema.ts';

const HOSTS = 'test/fixtures/hosts.lab.yaml';
const SSH = 'test/fixtures/over-ssh.lab.yaml';
const SUDO = 'test/fixtures/over-ssh-sudo.lab.yaml';
const hostsDir = '/var/lib/migralab-test/mlhosts';
const md5 = (f: string) => createHash('md5').update(readFileSync(f)).digest('hex');
const hostFiles = ['controller', 'compute1'].map((n) => join(hostsDir, 'nodes', n, 'hosts'));
/** What each bare host's /etc/libvirt has beyond this machine's (an overlay: its upper directory). */
const libvirtUppers = ['controller', 'compute1'].map((n) => join(hostsDir, 'nodes', n, 'host/etc-libvirt/upper'));
/**
 * What a bare host's /etc/libvirt shows that this machine's does not: files of its upper directory
 * that this machine lacks or that differ from it. (A file this machine has, changed and put back,
 * stays in the upper directory as an identical copy: where libvirt-daemon-system is installed, as
 * the openstack profile's packages do, libvirtd.conf and qemu.conf exist here.)
 */
const listing = (d: string) => {
  if (!existsSync(d)) return ['(missing)'];
  return readdirSync(d, { recursive: true })
    .map(String)
    // libvirtd's own definitions, which it rewrites itself when it loads them (adding a uuid): not migralab's changes
    .filter((f) => !/^(nwfilter|qemu\/networks)(\/|$)/.test(f))
    .filter((f) => {
      const mine = join(d, f);
      const host = join('/etc/libvirt', f);
      if (statSync(mine).isDirectory()) return !existsSync(host);
      return !existsSync(host) || !readFileSync(mine).equals(readFileSync(host));
    })
    .sort();
};
/** What the plan says of a file this machine may already have (libvirt-daemon-system): `create`, or `change` of the host's copy. */
const verbFor = (f: string) => (existsSync(join('/etc/libvirt', f)) ? 'change' : 'create');
const scratch = mkdtempSync(join(tmpdir(), 'mlssh-'));
let before: string[];

/** sshd's per-connection processes on a host: the children of its listener (by PID, from the hosts lab's ledger). */
async function sshdSessions(node: string): Promise<number[]> {
  const ledger = JSON.parse(readFileSync('/var/lib/migralab-test/mlhosts.ledger.json', 'utf8')) as { resources: { name: string; pid?: number }[] };
  const listener = ledger.resources.find((r) => r.name === `sshd@${node}`)!.pid!;
  // each connection is a monitor process (the listener's child) and its session child, which
  // holds the socket: both, or the connection lingers instead of dropping
  const children = async (pid: number) =>
    (await execa('ps', ['-o', 'pid=', '--ppid', String(pid)], { reject: false })).stdout.split('\n').map((l) => Number(l.trim())).filter((n) => n > 0);
  const monitors = await children(listener);
  return [...monitors, ...(await Promise.all(monitors.map(children))).flat()];
}

/** The commands running in the bare hosts' namespaces besides their own sshds. */
async function strangers(): Promise<string[]> {
  const out: string[] = [];
  for (const ns of ['mlab-mlhosts-controller', 'mlab-mlhosts-compute1']) {
    const pids = (await execa('ip', ['netns', 'pids', ns])).stdout.split('\n').filter(Boolean);
    for (const p of pids) {
      const name = readFileSync(`/proc/${p}/comm`, 'utf8').trim();
      if (name !== 'sshd') out.push(`${ns}: ${name}`);
    }
  }
  return out;
}

beforeAll(async () => {
  await cli(['down', SUDO]);
  await cli(['down', SSH]);
  await cli(['down', HOSTS]);
  const up = await cli(['up', HOSTS]);
  expect(up.exitCode, up.all).toBe(0);
  before = hostFiles.map(md5);
}, 120_000);
afterAll(async () => {
  await cli(['down', SUDO]);
  await cli(['down', SSH]);
  await cli(['down', HOSTS]);
  rmSync(scratch, { recursive: true, force: true });
});

describe('the ssh provider on real sshd hosts', () => {
  it('up --plan prints every change as a diff and changes nothing', async () => {
    const r = await cli(['up', SSH, '--plan']);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stdout).toMatch(/controller \(root@10\.79\.0\.11:22\): NFS server ganesha/);
    expect(r.stdout).toMatch(/change \/etc\/hosts:\n(\s+\+ .*\n)*\s+\+ 10\.79\.0\.12\tcompute1/);
    expect(r.stdout).toMatch(/start ganesha: ganesha\.nfsd/);
    expect(r.stdout).toMatch(/compute1 \(root@10\.79\.0\.12:22\): NFS client qemu/);
    expect(hostFiles.map(md5)).toEqual(before);
    expect(existsSync('/var/lib/migralab-test/remote')).toBe(false);
  }, 60_000);

  it('a changed host key is refused, naming the host and both fingerprints; nothing is applied', async () => {
    const known = readFileSync(join(hostsDir, 'ssh/known_hosts'), 'utf8').split('\n');
    const other = readFileSync(join(hostsDir, 'ssh/host-compute1.pub'), 'utf8').trim().split(' ');
    const forged = known.map((l) => (l.startsWith('10.79.0.11 ') ? `10.79.0.11 ${other[0]} ${other[1]}` : l)).join('\n');
    writeFileSync(join(scratch, 'known_hosts'), forged);
    const topo = join(scratch, 'forged.lab.yaml');
    writeFileSync(topo, readFileSync(SSH, 'utf8').replace(join(hostsDir, 'ssh/known_hosts'), join(scratch, 'known_hosts')).replace('name: mlssh', 'name: mlforged'));
    const r = await cli(['up', topo]);
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(/host key of controller \(10\.79\.0\.11:22\) changed: .*known_hosts has SHA256:\S+, the host presented SHA256:\S+\. Refusing to connect/);
    expect(hostFiles.map(md5)).toEqual(before);
    expect(existsSync('/var/lib/migralab-test/mlforged.ledger.json')).toBe(false);
  }, 60_000);

  it.each([
    ['a host that does not answer', (t: string) => t.replace('address: 10.79.0.12', 'address: 10.79.0.13').replace('name: mlssh', 'name: mlgone'), /cannot connect to compute1 \(root@10\.79\.0\.13:22\): .*nothing answered there/, 'mlgone', 4],
    ['a user who is not root and may not sudo', (t: string) => t.replace('user: root', 'user: migralab-nosudo').replace('name: mlssh', 'name: mlnosudo'), /controller: migralab-nosudo is not root and sudo -n refuses \(sudo: a password is required\): migralab needs root or password-less sudo there/, 'mlnosudo', 3],
    ['a key the hosts do not accept', (t: string) => t.replace(join(hostsDir, 'ssh/id_ed25519'), join(scratch, 'other_ed25519')).replace('name: mlssh', 'name: mlkey'), /controller \(root@10\.79\.0\.11:22\): authentication failed \(key \S+other_ed25519\)/, 'mlkey', 3],
  ] as const)('%s: a clear error naming the host, an exit code, nothing applied', async (_what, edit, message, lab, exitCode) => {
    if (!existsSync(join(scratch, 'other_ed25519'))) await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(scratch, 'other_ed25519')]);
    const topo = join(scratch, `${lab}.lab.yaml`);
    writeFileSync(topo, edit(readFileSync(SSH, 'utf8')));
    const t0 = performance.now();
    const r = await cli(['up', topo]);
    expect(r.exitCode, r.all).toBe(exitCode);
    expect(r.stderr).toMatch(message);
    expect(performance.now() - t0).toBeLessThan(30_000);
    expect(hostFiles.map(md5)).toEqual(before);
    expect(existsSync(`/var/lib/migralab-test/${lab}.ledger.json`)).toBe(false);
    expect(existsSync('/var/lib/migralab-test/remote')).toBe(false);
  }, 60_000);

  let results: Results;
  it('runs the small scenario through ssh2 with results of the same shape as local ones', async () => {
    const dir = join(scratch, 'run');
    const r = await cli(['run', 'test/fixtures/small.yaml', '--topology', SSH, '--results-dir', dir], { timeoutMs: 280_000 });
    expect(r.exitCode, r.all).toBe(0);
    results = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Results;
    expect(results.environment.provider).toBe('ssh');
    expect(results.iterations).toHaveLength(6);
    for (const i of results.iterations) {
      expect(i.ok, `${i.strategy} #${i.repetition}: ${i.error}`).toBe(true);
      expect(i.verified).toEqual({ onDestination: true, sourceGone: true, diskIntact: true, ramIntact: true, answersPing: true });
      expect(i.qemu.totalTimeMs).toBeGreaterThan(0);
      expect(i.link!.wireBytes).toBeGreaterThan(1e6);
    }
    // the same fields as a local run's iteration
    const local = JSON.parse(readFileSync('test/fixtures/results/small.results.json', 'utf8')) as Results;
    for (const k of Object.keys(local.iterations[0]!)) if (k !== 'cell') expect(Object.keys(results.iterations[0]!), k).toContain(k);
  }, 300_000);

  it('down (done by the run) put every file back byte for byte and left nothing on the hosts', async () => {
    expect(hostFiles.map(md5)).toEqual(before);
    expect(existsSync('/var/lib/migralab-test/remote')).toBe(false);
    expect(existsSync('/var/lib/migralab-test/ssh-hosts')).toBe(false);
    expect(existsSync('/var/lib/migralab-test/mlssh.ledger.json')).toBe(false);
    // only the hosts' own sshds run in their namespaces
    for (const ns of ['mlab-mlhosts-controller', 'mlab-mlhosts-compute1']) {
      const pids = (await execa('ip', ['netns', 'pids', ns])).stdout.split('\n').filter(Boolean);
      const names = await Promise.all(pids.map(async (p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim()));
      expect(names.filter((n) => n !== 'sshd'), ns).toEqual([]);
    }
  });

  // A libvirtd.conf the controller's user already had: the plan changes it, down puts it back byte for byte.
  const USER_CONF = '# the user\'s own libvirtd.conf\nlisten_tcp = 0\nlog_level = 3\n';
  const userConf = join(libvirtUppers[0]!, 'libvirtd.conf');
  it('as a non-root user with sudo: up --plan --driver libvirt adds the tutorial\'s libvirtd.conf, qemu.conf and a listening libvirtd, and changes nothing', async () => {
    const w = await cli(['shell', '--topology', HOSTS, 'controller', '--', 'sh', '-c', `printf '%s' "$1" >/etc/libvirt/libvirtd.conf`, 'sh', USER_CONF]);
    expect(w.exitCode, w.all).toBe(0);
    expect(readFileSync(userConf, 'utf8')).toBe(USER_CONF);
    const r = await cli(['up', SUDO, '--plan', '--driver', 'libvirt']);
    expect(r.exitCode, r.all).toBe(0);
    for (const [node, address] of [['controller', '10.79.0.11'], ['compute1', '10.79.0.12']] as const) {
      const part = r.stdout.slice(r.stdout.indexOf(`${node} (migralab@${address}:22)`));
      if (node === 'controller')
        expect(part).toMatch(/change \/etc\/libvirt\/libvirtd\.conf:\n\s+- listen_tcp = 0\n(\s+[-+] .*\n)*\s+\+ # migralab: listen_tcp = 0\n(\s+[-+] .*\n)*\s+\+ listen_tcp = 1\n/);
      else expect(part).toMatch(new RegExp(`${verbFor('libvirtd.conf')} /etc/libvirt/libvirtd\\.conf:\\n(\\s+[-+] .*\\n)*\\s+\\+ listen_tcp = 1\\n(\\s+[-+] .*\\n)*\\s+\\+ listen_addr = "${address.replace(/\./g, '\\.')}"`));
      expect(part).toMatch(new RegExp(`${verbFor('qemu.conf')} /etc/libvirt/qemu\\.conf:\\n(\\s+[-+] .*\\n)*\\s+\\+ security_driver = "none"`));
      expect(part).toMatch(/start libvirtd: libvirtd --listen -f \/etc\/libvirt\/libvirtd\.conf/);
    }
    expect(hostFiles.map(md5)).toEqual(before);
    expect(readFileSync(userConf, 'utf8')).toBe(USER_CONF);
    expect(libvirtUppers.map(listing)).toEqual([['libvirtd.conf'], []]);
  }, 60_000);

  it('a host without libvirtd: the plan names the package and the command, up --driver libvirt refuses with exit 3, nothing applied', async () => {
    // hidden in the controller's own mount namespace: command -v finds no executable libvirtd there
    const hide = await cli(['shell', '--topology', HOSTS, 'controller', '--', 'mount', '--bind', '/dev/null', '/usr/sbin/libvirtd']);
    expect(hide.exitCode, hide.all).toBe(0);
    try {
      const plan = await cli(['up', SUDO, '--plan', '--driver', 'libvirt']);
      expect(plan.exitCode, plan.all).toBe(0);
      expect(plan.stdout).toMatch(/controller \(migralab@10\.79\.0\.11:22\): NFS server ganesha\n  missing: libvirtd — install with: apt-get install -y libvirt-daemon \(or migralab up --install\)/);
      const up = await cli(['up', SUDO, '--driver', 'libvirt']);
      expect(up.exitCode, up.all).toBe(3);
      expect(up.stderr).toMatch(/controller lacks libvirtd: apt-get install -y libvirt-daemon there, or run migralab up --install/);
    } finally {
      await cli(['shell', '--topology', HOSTS, 'controller', '--', 'umount', '/usr/sbin/libvirtd']);
    }
    expect(hostFiles.map(md5)).toEqual(before);
    expect(existsSync('/var/lib/migralab-test/mlsudo.ledger.json')).toBe(false);
    expect(existsSync('/var/lib/migralab-test/remote')).toBe(false);
  }, 60_000);

  it('as a non-root user with sudo: both drivers run through ssh2 with every proof; down reverts the libvirt setup too', async () => {
    const dir = join(scratch, 'drivers');
    const r = await cli(['run', 'test/fixtures/ssh-drivers.yaml', '--topology', SUDO, '--results-dir', dir], { timeoutMs: 280_000 });
    expect(r.exitCode, r.all).toBe(0);
    // ssh hosts boot cold for now (lab/migrate/qemu/driver.ts)
    expect(r.all).toMatch(/guests up in [\d.]+ s \(booted cold\)/);
    // the libvirt setup was applied by the run, in the hosts' ledgers (the lab was up without it)
    expect(r.all).toMatch(/libvirt: controller \(migralab@10\.79\.0\.11:22\)/);
    expect(r.all).toMatch(/compute1: started libvirtd \(pid \d+\)/);
    const res = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Results;
    expect(res.environment.provider).toBe('ssh');
    expect(res.iterations.map((i) => `${i.strategy}/${i.driver}`).sort()).toEqual(['block/libvirt', 'block/qemu', 'shared/libvirt', 'shared/qemu']);
    for (const i of res.iterations) {
      expect(i.ok, `${i.strategy}/${i.driver}: ${i.error}`).toBe(true);
      expect(i.verified).toEqual({ onDestination: true, sourceGone: true, diskIntact: true, ramIntact: true, answersPing: true });
      if (i.driver === 'libvirt') {
        expect(i.libvirt!.timeElapsedMs).toBeGreaterThan(0);
        expect(i.libvirt!.virshMs).toBeGreaterThan(0);
      }
    }
    expect(res.environment.libvirtVersion).toMatch(/^\d+\.\d+\.\d+$/);
    // down (done by the run): every file back, nothing of libvirt's left in the hosts' /etc/libvirt, no daemon left
    expect(hostFiles.map(md5)).toEqual(before);
    expect(readFileSync(userConf, 'utf8')).toBe(USER_CONF);
    expect(libvirtUppers.map(listing)).toEqual([['libvirtd.conf'], []]);
    expect(existsSync('/var/lib/migralab-test/remote')).toBe(false);
    expect(existsSync('/var/lib/migralab-test/mlsudo.ledger.json')).toBe(false);
    expect(await strangers()).toEqual([]);
  }, 300_000);

  it('a libvirt run killed mid-run: down destroys its domains on the hosts, stops the libvirtds and reverts every file', async () => {
    const run = execa('node', ['scripts/migralab.js', 'run', 'test/fixtures/libvirt.yaml', '--topology', SUDO, '--results-dir', join(scratch, 'killed')], { reject: false });
    let seen = '';
    await new Promise<void>((resolve, reject) => {
      const look = (b: Buffer) => {
        seen += String(b);
        if (/guests up in/.test(seen)) resolve();
      };
      run.stdout!.on('data', look);
      run.stderr!.on('data', look);
      void run.then(() => reject(new Error(`the run ended before its guests were up: ${seen}`)));
    });
    process.kill(run.pid!, 'SIGKILL');
    await run;
    // the guests' QEMUs (libvirt's) and the libvirtds still run on the hosts
    expect((await strangers()).join(' ')).toMatch(/qemu-system-x86.*libvirtd|libvirtd.*qemu-system-x86/);
    const d = await cli(['down', SUDO]);
    expect(d.exitCode, d.all).toBe(0);
    expect(d.all).toMatch(/had to kill .*block-vm@(controller|compute1)/);
    expect(await strangers()).toEqual([]);
    expect(hostFiles.map(md5)).toEqual(before);
    expect(readFileSync(userConf, 'utf8')).toBe(USER_CONF);
    expect(libvirtUppers.map(listing)).toEqual([['libvirtd.conf'], []]);
    expect(existsSync('/var/lib/migralab-test/mlsudo.ledger.json')).toBe(false);
  }, 180_000);

  it('a connection killed mid-migration: that iteration fails saying so, the guest is where the hypervisor says, and down still reverts', async () => {
    const dir = join(scratch, 'drop');
    const scenario = join(scratch, 'drop.yaml');
    writeFileSync(scenario, ['name: e2e-ssh-drop', 'strategies: [block]', 'repetitions: 2', 'guest: { memory: 128MiB, disk: 128MiB, diskData: 64MiB }', 'link: { rate: 200Mbit }', 'ping: { intervalMs: 5 }', 'timeoutSeconds: 60', ''].join('\n'));
    const run = execa('node', ['scripts/migralab.js', 'run', scenario, '--topology', SSH, '--results-dir', dir], { reject: false, all: true });
    let killed = false;
    run.stderr!.on('data', (b: Buffer) => {
      if (!killed && /disk mirror started/.test(String(b))) {
        killed = true;
        void sshdSessions('controller').then((pids) => pids.forEach((p) => process.kill(p, 'SIGKILL')));
      }
    });
    const r = await run;
    expect(killed).toBe(true);
    const res = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')) as Results;
    const first = res.iterations[0]!;
    expect(first.ok).toBe(false);
    expect(first.error).toMatch(/connection|closed|dropped/i);
    expect(first.guestOn?.node).toMatch(/^(controller|compute1)$/);
    expect(first.guestOn?.status).toBe('running');
    // the run went on: the next migration connected anew
    expect(res.iterations).toHaveLength(2);
    expect([0, 1]).toContain(r.exitCode);
    expect(hostFiles.map(md5)).toEqual(before);
    expect(existsSync('/var/lib/migralab-test/remote')).toBe(false);
  }, 300_000);
});
