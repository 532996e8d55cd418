/**
 * The openstack lab profile, brought up by `up` inside the lab's nodes: on the controller
 * (the nfs-server node) MariaDB, RabbitMQ (with its own epmd), keystone and placement under
 * uwsgi, glance, neutron-server and nova's control services; on every compute node libvirtd
 * and nova-compute. Every service is a lab daemon in the ledger before it starts (so `down`
 * stops it), runs as root inside its node's namespaces with private /etc/<svc>, /var/lib/<svc>
 * and /var/log/<svc> (bind mounts in the node's mount namespace, gone with it), keeps its
 * data in the lab's directory (removed by down) and listens on its node's lab address only.
 * Each one's health is waited for before the next one that needs it starts.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { MigralabError } from '../../errors.ts';
import type { LocalNode } from '../../exec/local.ts';
import type { Ledger } from '../../state/ledger.ts';
import type { LabPlan, NodePlan } from '../../provision/plan.ts';
import type { GuestImage } from '../../image/build.ts';
import { kernelCmdline } from '../../image/build.ts';
import { run } from '../../exec/run.ts';
import { waitFor } from '../../time/wait.ts';
import { startLibvirtd } from '../../migrate/libvirt/daemon.ts';
import { TUTORIAL_INSTANCES_DIR } from '../../provision/plan.ts';
import type { LabNode } from '../../provision/provider.ts';
import { OpenstackApi, RELAY_JS, relaySocket } from './api.ts';
import { databaseCache } from './cache.ts';
import {
  PORTS,
  SERVICES,
  databaseSql,
  keystoneConf,
  keystoneUrl,
  mariadbArgs,
  placementConf,
  rabbitmqConf,
  rabbitmqEnv,
  uwsgiArgs,
  glanceApiConf,
  neutronConf,
  ml2Conf,
  linuxbridgeAgentConf,
  novaConf,
  vfatMountWrappers,
  adminOpenrc,
  PROVIDER_IF,
  linuxbridgeName,
  type ServiceName,
  type Secrets,
  type StackContext,
} from './config.ts';

export type { Progress } from '../../provision/provider.ts';
import type { Progress } from '../../provision/provider.ts';

/** Where the profile's files live: one directory per node in the lab's directory. */
export function stackDirs(plan: LabPlan) {
  const root = join(plan.labDir, 'openstack');
  return {
    root,
    secrets: join(root, 'secrets.json'),
    openrc: join(root, 'admin-openrc'),
    sockets: join(root, 'api'),
    log: join(root, 'log'),
    node: (n: string) => join(root, 'nodes', n),
  };
}

export interface StackDeps {
  plan: LabPlan;
  ledger: Ledger;
  transport: (n: NodePlan) => LocalNode;
  /** The lab's node for a plan (its transport and uplink counters), for libvirtd's ledger entry. */
  labNode: (n: NodePlan) => LabNode;
  progress: Progress;
  signal?: AbortSignal;
  /** The lab's guest image: its kernel and initramfs become glance images. */
  image: GuestImage;
  /** Nodes that have the tutorial's /opt/stack/data/nova/instances (an overlay on /opt); the others' nova uses their instances directory. */
  tutorialPath: ReadonlySet<string>;
}

/** What `up` leaves in lab.json about the profile. */
export interface StackInfo {
  kind: 'openstack';
  controller: string;
  keystone: string;
  /** Per service: ms from its start to its health. */
  startMs: Record<string, number>;
  upMs: number;
  /** The admin's credentials for the `openstack` client, to source inside the controller. */
  openrc: string;
  /** The databases came from the cache of an earlier bring-up (no migrations ran). */
  databasesCached: boolean;
  /** What up created through the APIs for the guests. */
  resources: { network: string; subnet: string; images: { kernel: string; ramdisk: string; guest: string } };
}

const secret = () => randomBytes(12).toString('hex');

export function newSecrets(): Secrets {
  const per = () => Object.fromEntries(SERVICES.map((s) => [s, secret()])) as Secrets['db'];
  return { admin: secret(), rabbit: secret(), db: per(), user: per() };
}

async function readSecrets(file: string): Promise<Secrets> {
  return JSON.parse(await readFile(file, 'utf8')) as Secrets;
}

/** The admin's API client of a lab that runs the profile. */
export async function adminApi(plan: LabPlan): Promise<OpenstackApi> {
  const d = stackDirs(plan);
  const s = await readSecrets(d.secrets);
  return new OpenstackApi(d.sockets, keystoneUrl(context(plan, s)), { username: 'admin', password: s.admin, project: 'admin' });
}

function context(plan: LabPlan, secrets: Secrets): StackContext {
  return { controller: plan.nfsServer.name, controllerAddress: plan.nfsServer.address, secrets, novaLifecycleEvents: plan.topology.openstack?.novaLifecycleEvents };
}

/** A file that holds passwords: 0600 even where a copy of the package's file (0640, its group) was there first. */
async function writeSecret(file: string, text: string): Promise<void> {
  await writeFile(file, text, { mode: 0o600 });
  await chmod(file, 0o600);
}

/** The last lines of a log file, for an error message. */
async function tail(file: string, lines = 15): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

class Bringup {
  readonly dirs: ReturnType<typeof stackDirs>;
  readonly controller: NodePlan;
  readonly ctl: LocalNode;
  readonly startMs: Record<string, number> = {};
  ctx!: StackContext;
  api!: OpenstackApi;
  /** Aborted on Ctrl-C or on the first failure of any branch: the others stop starting things. */
  private readonly stop = new AbortController();
  readonly signal: AbortSignal;
  /** Every branch started, so a failure is reported only once all of them have settled. */
  private readonly branches: Promise<unknown>[] = [];

  constructor(readonly d: StackDeps) {
    this.dirs = stackDirs(d.plan);
    this.controller = d.plan.nfsServer;
    this.ctl = d.transport(this.controller);
    this.signal = d.signal ? AbortSignal.any([d.signal, this.stop.signal]) : this.stop.signal;
  }

  /** Where nova keeps a node's instances: the tutorial's path where the node has it, never the host's own /opt. */
  instancesPath(n: NodePlan): string {
    return this.d.tutorialPath.has(n.name) ? TUTORIAL_INSTANCES_DIR : n.instancesDir;
  }

  /** Starts a branch of the bring-up: its failure stops the others (they are awaited by settle()). */
  branch<T>(p: Promise<T>): Promise<T> {
    const tracked = p.catch((e: unknown) => {
      if (!this.stop.signal.aborted) this.stop.abort(e);
      throw e;
    });
    tracked.catch(() => {});
    this.branches.push(tracked);
    return tracked;
  }

  /** Once every branch has settled: nothing of the bring-up is still starting (before `up` removes the lab). */
  async settle(): Promise<void> {
    for (let n = 0; n !== this.branches.length; ) {
      n = this.branches.length;
      await Promise.allSettled(this.branches);
    }
  }

  /** The failure that stopped the bring-up (the first one), when a branch failed. */
  get failure(): unknown {
    return this.stop.signal.aborted ? this.stop.signal.reason : undefined;
  }

  interrupted(): void {
    if (this.d.signal?.aborted) throw new MigralabError('INTERRUPTED', 'interrupted while the openstack profile came up');
    if (this.stop.signal.aborted) throw new MigralabError('LAB', 'openstack: stopped after another service failed');
  }

  /** A command on a node that must succeed; its output goes to the profile's log on failure. */
  async sh(node: LocalNode, argv: string[], what: string, timeoutMs = 120_000): Promise<string> {
    this.interrupted();
    const r = await node.run(argv, { check: false, timeoutMs });
    if (r.exitCode !== 0) throw new MigralabError('LAB', `openstack: ${what} failed on ${node.name} (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().split('\n').slice(-8).join('\n')}`);
    return r.stdout;
  }

  /** A daemon of the lab: in the ledger before it starts, its PID after; its output in log/<name>@<node>.log. */
  async daemon(n: NodePlan, name: string, argv: string[], env: Record<string, string> = {}): Promise<{ log: string; alive: () => Promise<boolean> }> {
    this.interrupted();
    const log = join(this.dirs.log, `${name}@${n.name}.log`);
    const slot = await this.d.ledger.record({ kind: 'process', name: `${name}@${n.name}`, node: 'lab' });
    // its own working directory and TMPDIR in the lab (an erl_crash.dump, nova's config-drive staging)
    const tmp = join(this.dirs.node(n.name), 'tmp');
    await mkdir(tmp, { recursive: true, mode: 0o700 });
    const envArgv = ['env', '-C', tmp, `TMPDIR=${tmp}`, ...Object.entries(env).map(([k, v]) => `${k}=${v}`)];
    const proc = await this.d.transport(n).spawn([...envArgv, ...argv], { logFile: log });
    await this.d.ledger.update(slot, { pid: proc.pid, startTime: proc.startTime });
    return { log, alive: () => proc.alive() };
  }

  /** Waits for a service's health; a daemon that exited meanwhile fails at once with its log's last lines. */
  async healthy(name: string, t0: number, d: { log: string; alive: () => Promise<boolean> }, probe: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
    await waitFor(
      `${name} to answer (see ${d.log})`,
      async () => {
        if (await probe().catch(() => false)) return true;
        if (!(await d.alive())) throw new MigralabError('LAB', `openstack: ${name} exited at start; the end of ${d.log}:\n${await tail(d.log)}`);
        return false;
      },
      { timeoutMs, intervalMs: 100, signal: this.signal },
    );
    this.startMs[name] = Math.round(performance.now() - t0);
  }

  /** Private /etc/<svc> (a copy of the host's), /var/lib/<svc> and /var/log/<svc> in a node's mount namespace. */
  async privateDirs(n: NodePlan, svc: string): Promise<{ etc: string; lib: string; log: string }> {
    const base = join(this.dirs.node(n.name), svc);
    const dirs = { etc: join(base, 'etc'), lib: join(base, 'lib'), log: join(base, 'log') };
    for (const d of Object.values(dirs)) await mkdir(d, { recursive: true, mode: 0o700 });
    const node = this.d.transport(n);
    if (existsSync(`/etc/${svc}`)) await this.sh(node, ['cp', '-a', `/etc/${svc}/.`, dirs.etc], `copying /etc/${svc}`);
    for (const [from, to] of [
      [dirs.etc, `/etc/${svc}`],
      [dirs.lib, `/var/lib/${svc}`],
      [dirs.log, `/var/log/${svc}`],
    ] as const) {
      if (!existsSync(to)) continue;
      await this.sh(node, ['mount', '--bind', from, to], `binding ${to}`);
    }
    return dirs;
  }

  async relay(): Promise<void> {
    await mkdir(this.dirs.sockets, { recursive: true, mode: 0o700 });
    const ports = [PORTS.keystone, PORTS.placement, PORTS.glance, PORTS.neutron, PORTS.nova];
    const t0 = performance.now();
    const d = await this.daemon(this.controller, 'openstack-api-relay', [process.execPath, '-e', RELAY_JS, ...ports.map((p) => `${relaySocket(this.dirs.sockets, p)}=${this.controller.address}:${p}`)]);
    await this.healthy('openstack-api-relay', t0, d, async () => ports.every((p) => existsSync(relaySocket(this.dirs.sockets, p))), 10_000);
  }

  async mariadb(): Promise<void> {
    const t0 = performance.now();
    const dir = join(this.dirs.node(this.controller.name), 'mysql');
    const datadir = join(dir, 'data');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await this.sh(this.ctl, ['mariadb-install-db', '--no-defaults', `--datadir=${datadir}`, '--user=root', '--auth-root-authentication-method=socket', '--skip-test-db'], 'mariadb-install-db');
    const socket = join(dir, 'mysqld.sock');
    const d = await this.daemon(this.controller, 'mariadb', [
      'mariadbd',
      ...mariadbArgs({ datadir, socket, address: this.controller.address, pidFile: join(dir, 'mysqld.pid'), logError: join(this.dirs.log, 'mariadb-error.log') }),
    ]);
    await this.healthy('mariadb', t0, d, async () => (await this.ctl.run(['mariadb-admin', '--no-defaults', `--socket=${socket}`, 'ping'], { check: false })).exitCode === 0);
    await this.sql(databaseSql(this.ctx.secrets), 'creating the databases');
  }

  get mysqlSocket(): string {
    return join(this.dirs.node(this.controller.name), 'mysql', 'mysqld.sock');
  }

  /** SQL through the client, as root over the socket (a file: passwords never on a command line). */
  async sql(text: string | { file: string }, what: string): Promise<void> {
    let file: string;
    if (typeof text === 'string') {
      file = join(this.dirs.node(this.controller.name), 'mysql', `${what.replace(/\W+/g, '-')}.sql`);
      await writeFile(file, text, { mode: 0o600 });
    } else file = text.file;
    await this.sh(this.ctl, ['sh', '-c', 'exec mariadb --no-defaults --socket="$1" < "$2"', 'sh', this.mysqlSocket, file], what, 300_000);
  }

  async rabbitmq(): Promise<void> {
    const t0 = performance.now();
    const dir = join(this.dirs.node(this.controller.name), 'rabbitmq');
    for (const sub of ['', 'mnesia', 'log']) await mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
    await writeSecret(join(dir, 'rabbitmq.conf'), rabbitmqConf(this.ctx));
    await writeFile(join(dir, 'enabled_plugins'), '[].\n', { mode: 0o600 });
    // epmd of our own, on the lab address, so erl does not leave a daemonized one behind
    const epmd = await this.daemon(this.controller, 'epmd', ['epmd', '-address', this.controller.address, '-port', String(PORTS.epmd)]);
    await this.healthy('epmd', t0, epmd, () => this.listening(this.ctl, PORTS.epmd), 10_000);
    const d = await this.daemon(this.controller, 'rabbitmq', ['/usr/lib/rabbitmq/bin/rabbitmq-server'], rabbitmqEnv(this.ctx, dir));
    await this.healthy('rabbitmq', t0, d, () => this.listening(this.ctl, PORTS.rabbit), 90_000);
  }

  async listening(node: LocalNode, port: number, address = this.controller.address): Promise<boolean> {
    const r = await node.run(['ss', '-Hltn', 'sport', '=', `:${port}`], { check: false });
    return r.stdout.includes(`${address}:${port}`);
  }

  /** An HTTP API that answers (any status below 500) through the relay. */
  async answers(port: number, path = '/'): Promise<boolean> {
    const r = await this.api.raw(`http://${this.controller.name}:${port}${path}`, 'GET', undefined, { token: null, ok: (s) => s > 0 && s < 500, timeoutMs: 5000 });
    return r.status > 0;
  }

  /** keystone's database, keys and bootstrap (admin user, project, the identity endpoint). */
  async keystoneInit(): Promise<void> {
    const t0 = performance.now();
    const km = (args: string[], what: string) => this.sh(this.ctl, ['keystone-manage', ...args], what, 300_000);
    await km(['db_sync'], 'keystone-manage db_sync');
    await km(['fernet_setup', '--keystone-user', 'root', '--keystone-group', 'root'], 'keystone-manage fernet_setup');
    await km(['credential_setup', '--keystone-user', 'root', '--keystone-group', 'root'], 'keystone-manage credential_setup');
    const url = `http://${this.controller.name}:${PORTS.keystone}/v3/`;
    // the password on stdin into OS_BOOTSTRAP_PASSWORD, never on a command line (ps shows those)
    const r = await this.ctl.run(
      ['sh', '-c', 'read -r p; OS_BOOTSTRAP_PASSWORD="$p" exec keystone-manage bootstrap --bootstrap-admin-url "$0" --bootstrap-internal-url "$0" --bootstrap-public-url "$0" --bootstrap-region-id RegionOne', url],
      { input: `${this.ctx.secrets.admin}\n`, check: false, timeoutMs: 300_000 },
    );
    if (r.exitCode !== 0) throw new MigralabError('LAB', `openstack: keystone-manage bootstrap failed on ${this.controller.name} (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().split('\n').slice(-8).join('\n')}`);
    this.startMs['keystone db'] = Math.round(performance.now() - t0);
  }

  async keystone(): Promise<void> {
    const t0 = performance.now();
    const d = await this.daemon(this.controller, 'keystone', ['uwsgi', ...uwsgiArgs({ wsgiFile: '/usr/bin/keystone-wsgi-public', address: this.controller.address, port: PORTS.keystone, processes: 2 })]);
    await this.healthy('keystone', t0, d, () => this.answers(PORTS.keystone, '/v3'), 120_000);
    await this.api.authenticate();
  }

  /** A service's database schema (its manage command), run as soon as MariaDB is up, beside the others. */
  async dbSync(name: string, steps: string[][]): Promise<void> {
    const t0 = performance.now();
    for (const argv of steps) await this.sh(this.ctl, argv, argv.join(' '), 600_000);
    this.startMs[`${name} db`] = Math.round(performance.now() - t0);
  }

  async placement(): Promise<void> {
    const t0 = performance.now();
    const d = await this.daemon(this.controller, 'placement', ['uwsgi', ...uwsgiArgs({ wsgiFile: '/usr/bin/placement-api', address: this.controller.address, port: PORTS.placement })]);
    await this.healthy('placement', t0, d, () => this.answers(PORTS.placement), 120_000);
  }

  async glance(): Promise<void> {
    const t0 = performance.now();
    const d = await this.daemon(this.controller, 'glance-api', ['glance-api', '--config-file', '/etc/glance/glance-api.conf']);
    await this.healthy('glance-api', t0, d, () => this.answers(PORTS.glance), 120_000);
  }

  async neutronServer(): Promise<void> {
    const t0 = performance.now();
    const d = await this.daemon(this.controller, 'neutron-server', ['neutron-server', '--config-file', '/etc/neutron/neutron.conf', '--config-file', '/etc/neutron/plugins/ml2/ml2_conf.ini']);
    await this.healthy('neutron-server', t0, d, () => this.answers(PORTS.neutron), 180_000);
    // Zed's neutron-server answers 500 to its first port list in a cold worker (DESIGN.md): warm it
    await waitFor('neutron-server to list networks', async () => (await this.api.call('network', 'GET', '/v2.0/networks', undefined, { ok: () => true })).status === 200, {
      timeoutMs: 60_000,
      intervalMs: 200,
      signal: this.signal,
    });
    await this.api.call('network', 'GET', '/v2.0/ports', undefined, { ok: () => true });
  }

  async novaApi(): Promise<void> {
    const t0 = performance.now();
    const api = await this.daemon(this.controller, 'nova-api', ['nova-api', '--config-file', '/etc/nova/nova.conf']);
    await this.healthy('nova-api', t0, api, () => this.answers(PORTS.nova), 180_000);
  }

  /** conductor and scheduler, up once nova-api lists them (so nova-api must answer first). */
  async novaServices(apiUp: Promise<void>): Promise<void> {
    const t0 = performance.now();
    const conductor = await this.daemon(this.controller, 'nova-conductor', ['nova-conductor', '--config-file', '/etc/nova/nova.conf']);
    const scheduler = await this.daemon(this.controller, 'nova-scheduler', ['nova-scheduler', '--config-file', '/etc/nova/nova.conf']);
    await apiUp;
    await this.healthy('nova-conductor', t0, conductor, () => this.serviceUp('nova-conductor', this.controller.name), 180_000);
    await this.healthy('nova-scheduler', t0, scheduler, () => this.serviceUp('nova-scheduler', this.controller.name), 180_000);
  }

  /** nova's own view of a service (GET /os-services): enabled and up. */
  async serviceUp(binary: string, host: string): Promise<boolean> {
    const r = await this.api.call<{ services: { binary: string; host: string; state: string; status: string }[] }>('compute', 'GET', `/os-services?binary=${binary}`);
    return r.body.services.some((x) => x.host === host && x.state === 'up' && x.status === 'enabled');
  }

  /** A compute node: libvirtd (the tutorial's), the linuxbridge agent, nova-compute; up once nova lists its hypervisor. */
  /** A compute node's own files, its provider interface, the vfat wrappers and the tutorial's libvirtd: needs nothing else up. */
  async prepareCompute(n: NodePlan): Promise<void> {
    const t0 = performance.now();
    const node = this.d.transport(n);
    if (n.name !== this.controller.name) {
      const nova = await this.privateDirs(n, 'nova');
      await mkdir(join(nova.lib, 'tmp'), { recursive: true });
      await writeSecret(join(nova.etc, 'nova.conf'), novaConf(this.ctx, n, this.instancesPath(n)));
      const neutron = await this.privateDirs(n, 'neutron');
      await mkdir(join(neutron.lib, 'tmp'), { recursive: true });
      await writeSecret(join(neutron.etc, 'neutron.conf'), neutronConf(this.ctx));
    }
    await writeSecret(join(this.dirs.node(n.name), 'neutron', 'etc', 'plugins', 'ml2', 'linuxbridge_agent.ini'), linuxbridgeAgentConf());
    for (const argv of [
      ['ip', 'link', 'add', PROVIDER_IF.agent, 'type', 'veth', 'peer', 'name', PROVIDER_IF.bridge],
      ['ip', 'link', 'set', PROVIDER_IF.bridge, 'master', 'br0', 'up'],
      ['ip', 'link', 'set', PROVIDER_IF.agent, 'up'],
    ])
      await this.sh(node, argv, argv.join(' '));
    await this.vfatMount(n);
    await startLibvirtd(this.d.ledger, this.d.labNode(n));
    this.startMs[`libvirtd@${n.name}`] = Math.round(performance.now() - t0);
  }

  /**
   * The lab network's bridge on a compute (linuxbridge's brq + the network id's first 11
   * characters) with the provider veth in it, made before any guest: the agent would make it
   * only for the node's first port, and when that port arrives by live migration its
   * binding is activated after the switchover, so QEMU's announcements of the guest's MAC
   * found no way out and br0 kept sending the guest's traffic to the source.
   */
  async providerBridge(n: NodePlan, network: string): Promise<void> {
    const node = this.d.transport(n);
    const br = linuxbridgeName(network);
    // made by os-vif or the agent already: only the provider veth needs to be in it
    const exists = (await node.run(['ip', 'link', 'show', br], { check: false })).exitCode === 0;
    for (const argv of [
      ...(exists ? [] : [['ip', 'link', 'add', br, 'type', 'bridge']]),
      ['ip', 'link', 'set', PROVIDER_IF.agent, 'master', br],
      ['ip', 'link', 'set', br, 'up'],
    ])
      await this.sh(node, argv, argv.join(' '));
  }

  /** The linuxbridge agent of a compute (once neutron-server answers). */
  async agent(n: NodePlan): Promise<void> {
    const t0 = performance.now();
    const agent = await this.daemon(n, 'neutron-linuxbridge-agent', ['neutron-linuxbridge-agent', '--config-file', '/etc/neutron/neutron.conf', '--config-file', '/etc/neutron/plugins/ml2/linuxbridge_agent.ini']);
    await this.healthy(`neutron-linuxbridge-agent@${n.name}`, t0, agent, () => this.agentAlive(n.name), 180_000);
  }

  /** nova-compute (once the conductor and placement answer: it would wait for them in 10 s steps). */
  async novaCompute(n: NodePlan): Promise<void> {
    const t0 = performance.now();
    const compute = await this.daemon(n, 'nova-compute', ['nova-compute', '--config-file', '/etc/nova/nova.conf']);
    await this.healthy(`nova-compute@${n.name}`, t0, compute, () => this.serviceUp('nova-compute', n.name), 240_000);
  }

  /** Where the kernel has no vfat, nova's config-drive loop mount is done with mtools (config.ts vfatMountWrappers). */
  async vfatMount(n: NodePlan): Promise<void> {
    if (/\bvfat\b/.test(await readFile('/proc/filesystems', 'utf8'))) return;
    const dir = join(this.dirs.node(n.name), 'bin');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const real = { realMount: join(dir, 'mount.real'), realUmount: join(dir, 'umount.real'), stateDir: join(dir, 'vfat-mounts') };
    await copyFile('/usr/bin/mount', real.realMount);
    await copyFile('/usr/bin/umount', real.realUmount);
    for (const f of [real.realMount, real.realUmount]) await chmod(f, 0o755);
    const w = vfatMountWrappers(real);
    for (const prog of ['mount', 'umount'] as const) {
      await writeFile(join(dir, prog), w[prog], { mode: 0o755 });
      await this.sh(this.d.transport(n), [real.realMount, '--bind', join(dir, prog), `/usr/bin/${prog}`], `binding the vfat ${prog} wrapper`);
    }
  }

  /** Every compute's hypervisor in nova's cell (the scheduler maps new hosts every 2 s). */
  async hypervisors(hosts: string[]): Promise<void> {
    const t0 = performance.now();
    await waitFor(
      `nova to map the hypervisors of ${hosts.join(', ')}`,
      async () => {
        const r = await this.api.call<{ hypervisors: { hypervisor_hostname: string; state: string; status: string }[] }>('compute', 'GET', '/os-hypervisors');
        const up = r.body.hypervisors.filter((h) => h.state === 'up' && h.status === 'enabled').map((h) => h.hypervisor_hostname);
        return hosts.every((h) => up.includes(h));
      },
      { timeoutMs: 120_000, intervalMs: 500, signal: this.signal },
    );
    this.startMs.hypervisors = Math.round(performance.now() - t0);
  }

  async agentAlive(host: string): Promise<boolean> {
    const r = await this.api.call<{ agents: { host: string; alive: boolean; agent_type: string }[] }>('network', 'GET', '/v2.0/agents');
    return r.body.agents.some((a) => a.host === host && a.alive && a.agent_type === 'Linux bridge agent');
  }

  /** keystone's side: the service project, one user per service (admin there), the catalog. */
  async identity(): Promise<void> {
    const t0 = performance.now();
    const k = (method: string, path: string, body?: unknown) => this.api.call<Record<string, { id: string }[] & { id: string }>>('identity', method, path, body);
    const project = (await k('POST', '/projects', { project: { name: 'service', domain_id: 'default', description: 'the services of a migralab lab' } })).body.project!;
    const roles = (await this.api.call<{ roles: { id: string; name: string }[] }>('identity', 'GET', '/roles')).body.roles;
    const admin = roles.find((r) => r.name === 'admin');
    if (!admin) throw new MigralabError('LAB', "openstack: keystone has no admin role after bootstrap");
    const catalog: Record<ServiceName, { type: string; url: string } | undefined> = {
      keystone: undefined,
      placement: { type: 'placement', url: `http://${this.controller.name}:${PORTS.placement}` },
      glance: { type: 'image', url: `http://${this.controller.name}:${PORTS.glance}` },
      neutron: { type: 'network', url: `http://${this.controller.name}:${PORTS.neutron}` },
      nova: { type: 'compute', url: `http://${this.controller.name}:${PORTS.nova}/v2.1` },
    };
    await Promise.all(
      SERVICES.filter((svc) => svc !== 'keystone').map(async (svc) => {
        const user = (await k('POST', '/users', { user: { name: svc, password: this.ctx.secrets.user[svc], domain_id: 'default' } })).body.user!;
        await this.api.call('identity', 'PUT', `/projects/${project.id}/users/${user.id}/roles/${admin.id}`);
        const c = catalog[svc]!;
        const service = (await k('POST', '/services', { service: { type: c.type, name: svc } })).body.service!;
        for (const iface of ['public', 'internal', 'admin'])
          await k('POST', '/endpoints', { endpoint: { service_id: service.id, interface: iface, url: c.url, region_id: 'RegionOne' } });
      }),
    );
    // the new endpoints are in the next token's catalog
    await this.api.authenticate();
    this.startMs.identity = Math.round(performance.now() - t0);
  }

  /**
   * What every guest needs, through the APIs: the flat provider network on the lab's CIDR (no
   * DHCP, no gateway, no port security: the guest's fixed address comes on its config drive),
   * and the guest image: the lab's kernel and initramfs (disk_format raw: Zed's image
   * inspection refuses aki/ari at pre-live-migration, DESIGN.md) and a small qcow2 root disk
   * that boots them.
   */
  async resources(image: GuestImage): Promise<StackInfo['resources']> {
    const t0 = performance.now();
    const plan = this.d.plan;
    const net = (
      await this.api.call<{ network: { id: string } }>('network', 'POST', '/v2.0/networks', {
        network: { name: 'lab', 'provider:network_type': 'flat', 'provider:physical_network': 'provider', shared: true, port_security_enabled: false },
      })
    ).body.network;
    const subnet = (
      await this.api.call<{ subnet: { id: string } }>('network', 'POST', '/v2.0/subnets', {
        subnet: { name: 'lab', network_id: net.id, cidr: plan.cidr, ip_version: 4, enable_dhcp: false, gateway_ip: null, allocation_pools: [{ start: plan.instanceAddress(0), end: plan.instanceAddress(99) }] },
      })
    ).body.subnet;
    const upload = async (name: string, file: string, format: string, props: Record<string, string> = {}) => {
      const r = await this.api.call<{ id: string }>('image', 'POST', '/v2/images', { name, disk_format: format, container_format: 'bare', visibility: 'public', ...props });
      await this.api.call('image', 'PUT', `/v2/images/${r.body.id}/file`, await readFile(file), { headers: { 'Content-Type': 'application/octet-stream' } });
      return r.body.id;
    };
    const [kernel, ramdisk] = await Promise.all([upload('migralab-kernel', image.kernel, 'raw'), upload('migralab-initramfs', image.initrd, 'raw')]);
    const root = join(this.dirs.root, 'root.qcow2');
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', root, '64M']);
    const guest = await upload('migralab-guest', root, 'qcow2', { kernel_id: kernel, ramdisk_id: ramdisk, os_command_line: kernelCmdline() });
    this.startMs.resources = Math.round(performance.now() - t0);
    return { network: net.id, subnet: subnet.id, images: { kernel, ramdisk, guest } };
  }

  /** The controller's configuration files of every service (before their database syncs). */
  async configure(): Promise<void> {
    const c = this.controller;
    const keystone = await this.privateDirs(c, 'keystone');
    await writeSecret(join(keystone.etc, 'keystone.conf'), keystoneConf(this.ctx));
    const placement = await this.privateDirs(c, 'placement');
    await writeSecret(join(placement.etc, 'placement.conf'), placementConf(this.ctx));
    const glance = await this.privateDirs(c, 'glance');
    for (const sub of ['images', 'staging', 'tasks', 'tmp']) await mkdir(join(glance.lib, sub), { recursive: true });
    await writeSecret(join(glance.etc, 'glance-api.conf'), glanceApiConf(this.ctx));
    const neutron = await this.privateDirs(c, 'neutron');
    await mkdir(join(neutron.lib, 'tmp'), { recursive: true });
    await writeSecret(join(neutron.etc, 'neutron.conf'), neutronConf(this.ctx));
    await writeSecret(join(neutron.etc, 'plugins', 'ml2', 'ml2_conf.ini'), ml2Conf());
    const nova = await this.privateDirs(c, 'nova');
    await mkdir(join(nova.lib, 'tmp'), { recursive: true });
    await writeSecret(join(nova.etc, 'nova.conf'), novaConf(this.ctx, c, this.instancesPath(c)));
  }
}

/**
 * Brings the profile up in a lab whose nodes, network and NFS are up. The databases of a
 * first bring-up (every schema, keystone's users and catalog, nova's cells) are kept in a
 * cache keyed by the packages' versions and the controller's name and address
 * (cache.ts); later bring-ups load them instead of running every service's migrations.
 */
export async function startOpenstack(d: StackDeps): Promise<StackInfo> {
  const b = new Bringup(d);
  try {
    return await bringUp(b, d);
  } catch (e) {
    // nothing may still be starting when up removes the lab
    await b.settle();
    throw b.failure instanceof Error && !(e instanceof MigralabError && e.code === 'INTERRUPTED') ? b.failure : e;
  }
}

async function bringUp(b: Bringup, d: StackDeps): Promise<StackInfo> {
  const t0 = performance.now();
  await mkdir(b.dirs.log, { recursive: true, mode: 0o700 });
  const cache = await databaseCache(d.plan);
  const secrets = cache.hit ? cache.secrets! : newSecrets();
  await writeSecret(b.dirs.secrets, JSON.stringify(secrets, null, 2));
  b.ctx = context(d.plan, secrets);
  await writeSecret(b.dirs.openrc, adminOpenrc(b.ctx));
  b.api = new OpenstackApi(b.dirs.sockets, keystoneUrl(b.ctx), { username: 'admin', password: secrets.admin, project: 'admin' });
  const computes = d.plan.nodes.filter((n) => n.roles.includes('compute'));
  d.progress(`openstack: on ${b.controller.name}: the API relay, MariaDB, RabbitMQ; libvirtd on ${computes.map((n) => n.name).join(', ')}`);
  await b.configure();
  await b.relay();
  const prepared = b.branch(Promise.all(computes.map((n) => b.prepareCompute(n))));
  // RabbitMQ takes longest to start (about 10 s) and only neutron and nova need it
  const rabbit = b.branch(b.rabbitmq());
  await b.branch(b.mariadb());
  if (cache.hit) {
    d.progress(`openstack: MariaDB ${b.startMs.mariadb} ms; loading the databases of an earlier bring-up (${cache.dir})`);
    const tl = performance.now();
    await b.branch(b.sql({ file: cache.dump }, 'loading the cached databases'));
    await cache.restoreKeys(join(b.dirs.node(b.controller.name), 'keystone', 'etc'));
    b.startMs['databases from cache'] = Math.round(performance.now() - tl);
    await b.branch(b.keystone());
  } else {
    d.progress(`openstack: MariaDB ${b.startMs.mariadb} ms; every service's database schema (the first time for these packages: then cached)`);
    const nm = (...a: string[]) => ['nova-manage', '--config-file', '/etc/nova/nova.conf', ...a];
    const syncs = [
      b.branch(b.dbSync('placement', [['placement-manage', 'db', 'sync']])),
      b.branch(b.dbSync('glance', [['glance-manage', 'db_sync']])),
      b.branch(b.dbSync('neutron', [['neutron-db-manage', '--config-file', '/etc/neutron/neutron.conf', '--config-file', '/etc/neutron/plugins/ml2/ml2_conf.ini', 'upgrade', 'heads']])),
      b.branch(b.dbSync('nova', [nm('api_db', 'sync'), nm('cell_v2', 'map_cell0'), nm('cell_v2', 'create_cell', '--name=cell1'), nm('db', 'sync')])),
    ];
    await b.branch(
      (async () => {
        await b.keystoneInit();
        await b.keystone();
        await b.identity();
      })(),
    );
    await Promise.all(syncs);
    // before any service writes its own rows (services, compute nodes, agents)
    await cache.save(b.mysqlSocket, b.ctl, secrets, join(b.dirs.node(b.controller.name), 'keystone', 'etc'), d.progress);
  }
  d.progress(`openstack: keystone up (${Math.round(performance.now() - t0)} ms in); placement, glance, neutron, nova; agents and nova-compute on the computes; the lab network and the guest image`);
  const glance = b.branch(b.glance());
  const placement = b.branch(b.placement());
  const neutron = b.branch(rabbit.then(() => b.neutronServer()));
  const novaApi = b.branch(rabbit.then(() => b.novaApi()));
  const novaServices = b.branch(rabbit.then(() => b.novaServices(novaApi)));
  const agents = b.branch(Promise.all([neutron, prepared]).then(() => Promise.all(computes.map((n) => b.agent(n)))));
  const novaComputes = b.branch(Promise.all([novaServices, placement, prepared]).then(() => Promise.all(computes.map((n) => b.novaCompute(n)))));
  const resources = b.branch(Promise.all([neutron, glance]).then(() => b.resources(d.image)));
  const wired = b.branch(Promise.all([resources, prepared]).then(([r]) => Promise.all(computes.map((n) => b.providerBridge(n, r.network)))));
  await Promise.all([glance, placement, neutron, novaApi, novaServices, agents, novaComputes, resources, prepared, wired]);
  await b.hypervisors(computes.map((n) => n.name));
  const upMs = Math.round(performance.now() - t0);
  d.progress(`openstack: up in ${(upMs / 1000).toFixed(1)} s`);
  return { kind: 'openstack', controller: b.controller.name, keystone: keystoneUrl(b.ctx), startMs: b.startMs, upMs, resources: await resources, databasesCached: cache.hit, openrc: b.dirs.openrc };
}
