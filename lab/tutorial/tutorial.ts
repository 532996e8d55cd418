/**
 * `migralab tutorial`: the classic "How to operate Live Migrate" tutorial walked step by step on
 * the lab. Each step says what the tutorial says, shows the commands a learner would type on
 * real hosts, runs them inside the lab's nodes and prints their real output, and says what to
 * notice. The two migrations (block, then shared storage) are real runs of the runner (one
 * iteration each, results.json written), watched by a ping whose replies scroll by live.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { loadTopology } from '../config/topology.ts';
import { MigralabError } from '../errors.ts';
import { abortable, checkAborted } from '../time/wait.ts';
import { providerFor } from '../provision/providers.ts';
import { planLab } from '../provision/plan.ts';
import { TUTORIAL_INSTANCES_DIR } from '../provision/plan.ts';
import type { StartedLab, LabNode } from '../provision/provider.ts';
import type { StreamingProcess } from '../exec/transport.ts';
import type { DriverName } from '../config/scenario.ts';
import type { IterationResult } from '../results/schema.ts';

export interface TutorialOptions {
  topologyFile: string;
  driver: DriverName;
  /** Run straight through; otherwise wait for Enter between steps (needs a TTY). */
  auto: boolean;
  keepLab?: boolean;
  /** Where the two runs' results go (block/ and shared/ under it). */
  resultsDir: string;
  /** How often the ping shown on screen sends (the measurement's own ping runs at 5 ms beside it). */
  displayPingMs?: number;
  signal?: AbortSignal;
  out: (s: string) => void;
  /** Reads one line from the user (interactive mode). */
  ask?: (prompt: string) => Promise<string>;
}

export interface TutorialOutcome {
  block: IterationResult | undefined;
  shared: IterationResult | undefined;
  resultsDirs: string[];
  /** The user stopped at a prompt (q). */
  stopped: boolean;
}

const STEPS = 5;
/** The tutorial's guest: small, so both migrations take seconds under TCG. */
const GUEST = { memory: '256MiB', disk: '256MiB', diskData: '64MiB' };
const fmt = (v: number | null | undefined, unit = 'ms') => (v === null || v === undefined ? 'not measured' : `${v.toFixed(1)} ${unit}`);

class Stop extends Error {}

/**
 * What the two largest ping gaps say of the tutorial's point (the pause does not grow with the
 * disk), from the figures of this run: about the same within a factor of 1.5, otherwise the two
 * figures and why one sample each can differ. Undefined when a gap was not measured.
 */
export function pauseVerdict(blockGapMs: number | null, sharedGapMs: number | null): string | undefined {
  if (blockGapMs === null || sharedGapMs === null || sharedGapMs <= 0) return undefined;
  const g = blockGapMs / sharedGapMs;
  if (g >= 2 / 3 && g <= 1.5) return `The pause the ping sees is about the same in both (${fmt(blockGapMs)} and ${fmt(sharedGapMs)}): only the last memory pages and the switchover stop the guest.`;
  return `The pause the ping sees differs here (${fmt(blockGapMs)} block, ${fmt(sharedGapMs)} shared, ${g.toFixed(2)}x): one migration is one sample on a shared machine; migralab run repeats each to give medians.`;
}

/**
 * A question on the terminal, for the interactive mode. A readline interface lives only while
 * it asks: between prompts the terminal is not in raw mode, so Ctrl-C is the signal it always
 * is; at a prompt readline turns Ctrl-C into its own event, which is passed on as that signal.
 * Ctrl-D (end of input) at a prompt stops the tutorial like q.
 */
export function stdinAsk(): { ask: (p: string) => Promise<string>; close: () => void } {
  let rl: ReturnType<typeof createInterface> | undefined;
  return {
    ask: (p) =>
      new Promise((res) => {
        rl = createInterface({ input: process.stdin, output: process.stdout });
        let answered = false;
        // no answer: migralab's own SIGINT handler runs now (a signal sent to ourselves could come
        // after the event loop ran dry), and its abort ends the wait (see pause)
        rl.on('SIGINT', () => {
          answered = true;
          rl?.close();
          process.emit('SIGINT', 'SIGINT');
        });
        rl.on('close', () => {
          if (!answered) res('q');
        });
        rl.question(p, (a) => {
          answered = true;
          rl?.close();
          res(a);
        });
      }),
    close: () => rl?.close(),
  };
}

export async function runTutorial(o: TutorialOptions): Promise<TutorialOutcome> {
  const out = o.out;
  const t = await loadTopology(o.topologyFile);
  const plan = planLab(t);
  const computes = plan.nodes.filter((n) => n.roles.includes('compute'));
  if (computes.length < 2) throw new MigralabError('CONFIG', `${o.topologyFile}: the tutorial needs two compute nodes, this topology has ${computes.length}`);
  if (t.provider !== 'local')
    throw new MigralabError('PREREQ', `the tutorial runs on the local lab (its steps show the files and daemons the local lab sets up); this topology's provider is ${t.provider}: on real hosts run migralab run scenarios/tutorial-libvirt.yaml --topology ${o.topologyFile}, and migralab up ${o.topologyFile} --plan --driver libvirt to see what it changes there`);
  const server = plan.nfsServer;
  // The tutorial moves its instance from compute1 to the controller: the NFS client to the server where the topology has them.
  const from = computes.find((n) => !n.roles.includes('nfs-server')) ?? computes[1]!;
  const to = computes.find((n) => n.name !== from.name)!;
  const outcome: TutorialOutcome = { block: undefined, shared: undefined, resultsDirs: [], stopped: false };

  let step = 0;
  const heading = (title: string) => {
    checkAborted(o.signal, 'the tutorial');
    out(`\n━━ Step ${++step} of ${STEPS}: ${title} ━━`);
  };
  const pause = async () => {
    if (o.auto || !o.ask) return;
    // Ctrl-C at the prompt ends the wait too: the question never answers, the signal's abort does.
    const a = await abortable(o.ask(`\n[Enter: next step, q: stop here] `), o.signal, 'the prompt');
    if (a.trim().toLowerCase().startsWith('q')) throw new Stop();
  };

  out(`migralab tutorial: the live-migration tutorial on lab ${t.name} (${o.topologyFile}), driver ${o.driver}`);
  out(`The tutorial's hosts are ${computes.map((n) => n.name).join(' and ')}; here they are network namespaces on this machine, with their own host names, /etc/hosts, mounts and daemons.`);
  const lab = await providerFor(t).up(t, resolve(o.topologyFile), (m) => out(`  ${m}`), o.signal);
  try {
    const node = (name: string) => lab.node(name);
    const show = async (n: LabNode | 'observer', argv: string[], opts: { as?: string; filter?: (l: string) => boolean } = {}) => {
      checkAborted(o.signal, 'the tutorial');
      const where = n === 'observer' ? plan.observer.name : n.name;
      out(`${where}# ${opts.as ?? argv.map((a) => (/[\s'"|*]/.test(a) ? `'${a}'` : a)).join(' ')}`);
      const r = await (n === 'observer' ? lab.observer() : n.transport).run(argv, { check: false, timeoutMs: 30_000 });
      const text = `${r.stdout}${r.stderr}`.replace(/\n+$/, '');
      const lines = text.split('\n').filter((l) => (opts.filter ? opts.filter(l) : true));
      if (text) for (const l of lines) out(`  ${l}`);
      if (r.exitCode !== 0) out(`  (exit ${r.exitCode})`);
      return r;
    };
    const notice = (...lines: string[]) => {
      out('What to notice:');
      for (const l of lines) out(`  • ${l}`);
    };
    const says = (text: string) => out(`The tutorial: ${text}`);

    // Step 1: the conditions.
    heading('the conditions for live migration');
    says('both hosts need the same CPU type and the same libvirt version, host names that resolve each other (/etc/hosts), migration over TCP configured in nova.conf, and a vfat config drive.');
    for (const n of [node(from.name), node(to.name)]) {
      await show(n, ['hostname']);
      await show(n, ['cat', '/etc/hosts']);
    }
    await show(node(from.name), ['getent', 'hosts', to.name]);
    const versionArgv = o.driver === 'libvirt' ? ['libvirtd', '--version'] : ['qemu-system-x86_64', '--version'];
    for (const n of [node(from.name), node(to.name)]) await show(n, versionArgv, { filter: (l) => l.trim() !== '' && !/Copyright/.test(l) });
    const { runDoctor, formatChecks } = await import('../doctor/checks.ts');
    const { createDriver } = await import('../migrate/registry.ts');
    // Starting the driver here (libvirt: libvirtd on every node) lets doctor check what the migrations will use.
    await createDriver(o.driver, lab, (m) => out(`  ${m}`));
    out('migralab doctor (the same checks, on the lab):');
    const checks = await runDoctor(lab, { drivers: [o.driver], diskBytes: 256 * 2 ** 20, diskDataBytes: 64 * 2 ** 20 });
    for (const l of formatChecks(checks).split('\n')) out(`  ${l}`);
    const failed = checks.filter((c) => c.status === 'fail');
    if (failed.length) throw new MigralabError('PREREQ', `the lab fails ${failed.map((c) => c.name).join(', ')}: the migrations would fail too (see the checks above)`);
    notice(
      `each node resolves the other by name: ${from.name} and ${to.name} are in both /etc/hosts, as the tutorial adds them.`,
      `the versions are the same on both nodes: one machine, one package. Under TCG (no hardware KVM here) the guest's CPU is QEMU's own model, the same on both sides, so "same CPU type" holds by construction.`,
      o.driver === 'libvirt'
        ? `nova.conf's TCP migration (live_migration_uri = qemu+tcp://%s/system) is what migralab's libvirt driver uses: virsh migrate ... qemu+tcp://${to.name}/system.`
        : `the qemu driver speaks QMP to QEMU directly and migrates over tcp: to the destination's address; run with --driver libvirt for the tutorial's qemu+tcp:// URI.`,
      `no nova runs here, so there is no config drive: the guest gets its identity through its control channel.`,
    );
    await pause();

    // Step 2: libvirtd's TCP listener.
    heading("libvirtd's TCP listener");
    says('set libvirtd_opts="-d -l" in /etc/default/libvirt-bin and, in /etc/libvirt/libvirtd.conf, listen_tls = 0, listen_tcp = 1, auth_tcp = "none"; then restart libvirtd.');
    if (o.driver === 'libvirt') {
      for (const n of [node(from.name), node(to.name)]) {
        await show(n, ['cat', '/etc/default/libvirt-bin']);
        await show(n, ['cat', '/etc/libvirt/libvirtd.conf'], { filter: (l) => l.trim() !== '' && !l.startsWith('#') });
        await show(n, ['ss', '-Hltn', 'sport', '=', ':16509']);
      }
      await show(node(from.name), ['virsh', '-c', `qemu+tcp://${to.name}/system`, 'version'], { filter: (l) => l.trim() !== '' });
      notice(
        `libvirtd runs in each node with -d -l and exactly those settings, listening on the node's lab address only (listen_addr): TCP without authentication is safe only because the lab's network exists nowhere else.`,
        `${from.name} reaches ${to.name}'s libvirtd over TCP by host name: that is what virsh migrate --p2p needs.`,
      );
    } else {
      await show(node(to.name), ['ss', '-Hltn']);
      notice(
        'the qemu driver needs no libvirtd: migralab talks to each QEMU over its QMP socket, and the destination QEMU listens for the migration stream itself (migrate-incoming).',
        'run migralab tutorial --driver libvirt to see this step with the tutorial\'s libvirtd.conf.',
      );
    }
    await pause();

    // Step 3: block migration.
    heading(`block migration from ${from.name} to ${to.name}, no shared storage`);
    says(`with "Block Migration" checked, nova copies the instance's disk to the destination along with its memory (libvirt: virsh migrate --live --copy-storage-all). "Disk Over Commit" lets nova count the disk's actual size rather than its virtual size when it checks the destination has room. A ping to the instance keeps answering throughout; one reply's delay grows at the switchover.`);
    out(`On real hosts: nova live-migration --block-migrate INSTANCE ${to.name}   (or Horizon's "Live Migrate Instance" with Block Migration checked)`);
    out(`  which has libvirt on ${from.name} run: virsh migrate --live --p2p --copy-storage-all INSTANCE qemu+tcp://${to.name}/system`);
    outcome.block = await migrate(lab, o, 'block', from.name, outcome);
    await pause();

    // Step 4: the NFS environment.
    heading(`an NFS environment: ${server.name} exports the instances directory, ${from.name} mounts it`);
    says(`the controller exports ${TUTORIAL_INSTANCES_DIR} (an /etc/exports line and exportfs), compute1 mounts it there with mount -t nfs, so both hosts see the same instance files.`);
    const ganeshaConf = join(server.dir, 'ganesha.conf');
    await show(node(server.name), ['cat', ganeshaConf], { as: `cat ${ganeshaConf}   # the lab's NFS server is nfs-ganesha (user space); its export block:`, filter: (l) => l.trim() !== '' });
    await show(node(from.name), ['showmount', '-e', server.name]);
    const nfs = lab.info.nfs;
    out(`On real hosts (compute1): mount -t nfs ${server.name}:${TUTORIAL_INSTANCES_DIR} ${TUTORIAL_INSTANCES_DIR}`);
    // A file written on the client through NFS, then listed on the server: the share, seen working.
    const probe = 'tutorial-nfs-probe.qcow2';
    if (nfs.client === 'kernel') {
      await show(node(from.name), ['grep', ' nfs', '/proc/mounts']);
      await show(node(from.name), ['qemu-img', 'create', '-q', '-f', 'qcow2', `${TUTORIAL_INSTANCES_DIR}/${probe}`, '16M']);
    } else {
      out(`In this lab: ${lab.info.environment.nfsClientReason}. QEMU opens the shared disk with its own NFS client (libnfs), nfs://${server.name}${nfs.exportPath}/DISK, from every node, so the disk's one copy lives on ${server.name}.`);
      await show(node(from.name), ['qemu-img', 'create', '-q', '-f', 'qcow2', `nfs://${server.name}${nfs.exportPath}/${probe}`, '16M']);
    }
    await show(node(server.name), ['ls', '-la', TUTORIAL_INSTANCES_DIR]);
    await node(server.name).transport.run(['rm', '-f', `${TUTORIAL_INSTANCES_DIR}/${probe}`], { check: false });
    notice(
      `the export is ${nfs.exportPath} on ${server.name} (inside ${server.name} also at ${TUTORIAL_INSTANCES_DIR}), offered to the lab's network ${plan.cidr} only; showmount asks ${server.name}'s mountd through rpcbind, as on real hosts.`,
      nfs.client === 'kernel'
        ? `${from.name} mounted it at ${TUTORIAL_INSTANCES_DIR} with the kernel's NFS client: the file it wrote there is on ${server.name}.`
        : `${from.name} wrote ${probe} through NFS (QEMU's client) and ${server.name} lists it in its export. ${from.name}'s own ${TUTORIAL_INSTANCES_DIR} holds only its local files here: without a kernel NFS client nothing is mounted there, and QEMU reaches the share by its nfs:// URL instead.`,
      `with shared storage there is no disk to copy: only the memory moves.`,
    );
    await pause();

    // Step 5: shared-storage live migration.
    heading(`shared-storage live migration from ${from.name} to ${to.name}`);
    says('with "Block Migration" unchecked the instance\'s disk is already on both hosts (NFS): the migration moves only memory and is much faster; the same ping shows the same short pause.');
    out(`On real hosts: nova live-migration INSTANCE ${to.name}`);
    out(`  which has libvirt on ${from.name} run: virsh migrate --live --p2p INSTANCE qemu+tcp://${to.name}/system`);
    outcome.shared = await migrate(lab, o, 'shared', from.name, outcome);

    out(`\n━━ The two migrations side by side ━━`);
    const rows: [string, (i: IterationResult) => number | null | undefined][] = [
      ['duration (migralab, request to completed)', (i) => i.durationMs],
      [o.driver === 'libvirt' ? 'downtime (libvirt)' : 'downtime (QEMU)', (i) => (o.driver === 'libvirt' ? (i.libvirt?.downtimeMs ?? i.qemu.downtimeMs) : i.qemu.downtimeMs)],
      ['ping interruption (largest gap)', (i) => i.ping.maxGapMs],
    ];
    if (o.driver === 'libvirt') rows.splice(1, 0, ["libvirt's own job time (time_elapsed)", (i) => i.libvirt?.timeElapsedMs]);
    const b = outcome.block;
    const s = outcome.shared;
    out(`  ${''.padEnd(42)} ${'block'.padStart(12)} ${'shared'.padStart(12)}   block/shared`);
    for (const [label, get] of rows) {
      const bv = b ? get(b) : undefined;
      const sv = s ? get(s) : undefined;
      const ratio = typeof bv === 'number' && typeof sv === 'number' && sv > 0 ? `${(bv / sv).toFixed(2)}x` : '—';
      out(`  ${label.padEnd(42)} ${fmt(bv).padStart(12)} ${fmt(sv).padStart(12)}   ${ratio}`);
    }
    if (b?.ok && s?.ok && b.durationMs !== null && s.durationMs !== null) {
      const ratio = b.durationMs / s.durationMs;
      const copied = b.qemu.diskBytes === null ? 'its disk' : fmt(b.qemu.diskBytes / 2 ** 20, 'MiB');
      if (ratio >= 1.2) out(`Shared storage moved the guest ${ratio.toFixed(2)} times faster than block migration, which copied ${copied} of disk first.`);
      else
        out(
          `Here block migration took about as long as shared storage (${ratio.toFixed(2)}x): the disk it copied is small (${copied}, ${GUEST.diskData} of it data) next to what both migrations share${o.driver === 'libvirt' ? ": virsh's wall time includes libvirt starting the destination QEMU and tearing the source down, the same for both; libvirt's own job time shows the copy" : ''}. A bigger disk (migralab run scenarios/block-vs-shared.yaml) widens the gap.`,
        );
      const verdict = pauseVerdict(b.ping.maxGapMs, s.ping.maxGapMs);
      if (verdict) out(verdict);
    }
    out(`Results: ${outcome.resultsDirs.map((d) => join(d, 'results.json')).join(', ')} (migralab report DIR... for the HTML report)`);
    return outcome;
  } catch (e) {
    if (e instanceof Stop) {
      outcome.stopped = true;
      out('stopped.');
      return outcome;
    }
    throw e;
  } finally {
    try {
      if (!lab.alreadyUp && !o.keepLab) {
        out(`taking lab ${t.name} down (--keep-lab keeps it for migralab shell NODE)`);
        await lab.down();
      }
    } finally {
      lab.release();
    }
  }
}

/** One real migration through the runner, with a display ping whose replies scroll by live. */
async function migrate(lab: StartedLab, o: TutorialOptions, strategy: 'block' | 'shared', bootOn: string, outcome: TutorialOutcome): Promise<IterationResult | undefined> {
  const out = o.out;
  // The scenario the step ran is kept beside its results (results.json and the report name it).
  const resultsDir = join(o.resultsDir, strategy);
  await mkdir(resultsDir, { recursive: true });
  const scenarioFile = join(resultsDir, `tutorial-${strategy}.yaml`);
  await writeFile(
    scenarioFile,
    [
      `name: tutorial-${strategy}`,
      `topology: ${JSON.stringify(resolve(o.topologyFile))}`,
      `strategies: [${strategy}]`,
      `drivers: [${o.driver}]`,
      'repetitions: 1',
      `bootOn: ${bootOn}`,
      `guest: { memory: ${GUEST.memory}, disk: ${GUEST.disk}, diskData: ${GUEST.diskData} }`,
      'ping: { intervalMs: 5 }',
      '',
    ].join('\n'),
  );
  outcome.resultsDirs.push(resultsDir);
  const { runScenario } = await import('../runner/run.ts');
  let display: { proc: StreamingProcess; done: Promise<void> } | undefined;
  let stopping: Promise<void> | undefined;
  const startPing = (address: string) => {
    const ms = o.displayPingMs ?? 100;
    out(`${lab.plan.observer.name}# ping -i ${ms / 1000} ${address}   # from the observer; the measurement's own ping runs at 5 ms beside it`);
    const proc = lab.observer().stream(['ping', '-n', '-O', '-i', String(ms / 1000), address]);
    let buf = '';
    proc.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.trim()) out(`  ${line}`);
      }
    });
    display = { proc, done: proc.exited.then(() => undefined) };
  };
  // One stop for both callers (the iteration's end and the finally): the second waits for the first.
  const stopPing = (): Promise<void> => {
    const d = display;
    if (!d) return stopping ?? Promise.resolve();
    display = undefined;
    stopping = (async () => {
      d.proc.kill('SIGINT');
      await Promise.race([d.done, new Promise((r) => setTimeout(r, 3000))]);
      d.proc.kill('SIGKILL');
      await d.done;
    })();
    return stopping;
  };
  let result: IterationResult | undefined;
  try {
    const r = await runScenario({
      scenarioFile,
      topologyFile: o.topologyFile,
      resultsDir,
      keepLab: true,
      skipDoctor: true,
      signal: o.signal,
      events: {
        step: (m) => out(`  migralab: ${m}`),
        iterationStart: (it) => {
          out(`  migralab: ${it.strategy} migration of the guest from ${it.source} to ${it.destination}`);
          if (it.address) startPing(it.address);
        },
        iterationEnd: (r) => {
          result = r;
          // the guest is torn down next: its silence then is not the migration's
          void stopPing();
        },
      },
      iterationHooks: {
        migrationEvents: {
          request: (text) => out(`  ── migralab sends: ${text}`),
          phase: (ph, atMs) => out(`  ── ${ph === 'mirror' ? 'the disk copy begins' : ph === 'ram' ? 'the memory copy begins' : 'close to the switchover'} (${atMs.toFixed(0)} ms after the request)`),
        },
      },
    });
    result ??= r.results.iterations[0];
  } finally {
    await stopPing();
  }
  if (!result) return undefined;
  const gap = result.ping.maxGapMs;
  out(
    result.ok
      ? `The migration completed: the guest runs on ${result.guestOn?.node ?? result.destination}, its source is gone${result.verified.diskIntact ? ', its disk reads back the same' : ''}${result.verified.ramIntact ? ', its memory too' : ''}.`
      : `The migration failed: ${result.error ?? 'see results.json'}. The guest is ${result.guestOn ? `${result.guestOn.status} on ${result.guestOn.node}` : 'where it was'}.`,
  );
  out(`  largest gap between ping replies (the measuring ping at ${result.ping.intervalMs} ms): ${fmt(gap)}${result.ping.lost ? `, ${result.ping.lost} replies lost` : ''}; the slowest reply took ${fmt(result.ping.maxRttMs)}`);
  out(`  duration ${fmt(result.durationMs)}; ${o.driver === 'libvirt' && result.libvirt ? `libvirt's downtime ${fmt(result.libvirt.downtimeMs)}, ` : ''}QEMU's downtime ${fmt(result.qemu.downtimeMs)}${strategy === 'block' ? (result.mirrorMs === null ? (o.driver === 'libvirt' ? "; libvirt does not report when the disk copy ends" : '') : `; the disk copy took ${fmt(result.mirrorMs)}`) : ''}`);
  return result;
}
