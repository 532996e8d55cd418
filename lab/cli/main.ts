import { Command, CommanderError } from 'commander';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { exitCodeOf, MigralabError } from '../errors.ts';
import { loadTopology } from '../config/topology.ts';
import { planLab } from '../provision/plan.ts';
import { providerFor } from '../provision/providers.ts';
import { Ledger } from '../state/ledger.ts';

const root = fileURLToPath(new URL('../../', import.meta.url));
export const defaultTopology = resolve(root, 'scenarios/topologies/two-node.lab.yaml');
export const defaultScenario = resolve(root, 'scenarios/block-vs-shared.yaml');

type Print = (s: string) => void;

/** A command run by `migralab shell` failed: its exit code is migralab's, with nothing added. */
class PassThroughExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

export function buildProgram(print: Print = (s) => process.stdout.write(s + '\n'), signal?: AbortSignal, stepSummary?: string): Command {
  const log: Print = (s) => process.stderr.write(s + '\n');
  const program = new Command('migralab')
    .description('Raise a two-node lab (controller serves its instances directory over NFS, compute1 is the client) and compare block migration with shared-storage live migration: real QEMU, QMP, namespaces, NFS and ping.')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('up')
    .description('raise the lab (idempotent): namespaces, bridges, NFS server, guest image')
    .argument('[topology]', 'topology file', defaultTopology)
    .option('--json', 'print the lab description as JSON')
    .option('--plan', 'print every change up would make (files as diffs, services, mounts) and change nothing')
    .option('--install', 'provider ssh: install missing Debian packages on the hosts (apt-get)')
    .option('--driver <name>', 'provider ssh: also set up what this migration driver needs on the hosts (libvirt: the tutorial\'s libvirtd.conf, qemu.conf and a listening libvirtd; a run with the libvirt driver does it otherwise)', 'qemu')
    .action(async (file: string, o: { json?: boolean; plan?: boolean; install?: boolean; driver: string }) => {
      if (o.driver !== 'qemu' && o.driver !== 'libvirt') throw new MigralabError('USAGE', `--driver: expected qemu or libvirt, got "${o.driver}"`);
      const libvirt = o.driver === 'libvirt';
      const t = await loadTopology(file);
      if (o.plan) {
        if (t.provider !== 'ssh') {
          print(`provider local: up creates only its own namespaces, bridges, mounts and daemons for lab ${t.name} (under ${t.paths.state}); down removes them. Nothing else on this host changes.`);
          return;
        }
        const { sshProvider, formatPlan } = await import('../provision/ssh.ts');
        const p = await sshProvider.plan(t, log, { libvirt });
        print(o.json ? JSON.stringify(p.hosts, null, 2) : formatPlan(p.hosts));
        return;
      }
      const r = t.provider === 'ssh' ? await (await import('../provision/ssh.ts')).sshProvider.upWith(t, resolve(file), log, signal, { install: o.install, libvirt }) : await providerFor(t).up(t, resolve(file), log, signal);
      r.release();
      if (o.json) return print(JSON.stringify({ alreadyUp: r.alreadyUp, ...r.info }, null, 2));
      const e = r.info.environment;
      print(r.alreadyUp ? `lab ${t.name} is already up` : `lab ${t.name} up in ${(r.info.upMs / 1000).toFixed(2)} s`);
      for (const issue of e.knownIssues ?? []) print(`  known issue: ${issue.text} (${issue.reference})`);
      print(`  nodes: ${r.info.nodes.map((n) => `${n.name} ${n.address} [${n.roles.join(', ')}]`).join('; ')}`);
      print(`  NFS: ganesha on ${r.info.nfs.server} exports ${r.info.nfs.exportPath}; client: ${e.nfsClient} (${e.nfsClientReason})`);
      print(`  accelerator: ${e.accelerator} (${e.acceleratorReason})`);
      const st = r.info.stack;
      if (st)
        print(
          `  openstack: keystone ${st.keystone} (${st.databasesCached ? 'databases from the cache of an earlier bring-up' : 'databases migrated, now cached'}; up in ${(st.upMs / 1000).toFixed(1)} s); as admin: node scripts/migralab.js shell --topology ${r.info.topologyFile} ${st.controller} -- sh -c '. ${st.openrc} && openstack server list'`,
        );
    });

  program
    .command('down')
    .description('remove every namespace, process, mount and file of the lab (also after a crash)')
    .argument('[topology]', 'topology file', defaultTopology)
    .option('--forget', 'ssh provider: drop this machine\'s record of the lab without touching its hosts (they no longer exist)')
    .action(async (file: string, o: { forget?: boolean }) => {
      const t = await loadTopology(file);
      const t0 = performance.now();
      const r = await providerFor(t).down(planLab(t), log, { forget: o.forget });
      print(
        r.wasUp
          ? `lab ${t.name} down in ${((performance.now() - t0) / 1000).toFixed(2)} s (${r.removed} resources removed${r.killed.length ? `; had to kill ${r.killed.join(', ')}` : ''})`
          : `lab ${t.name} is not up: nothing to do`,
      );
    });

  program
    .command('status')
    .description('show whether the lab is up and what it consists of')
    .argument('[topology]', 'topology file', defaultTopology)
    .option('--json', 'machine-readable output')
    .action(async (file: string, o: { json?: boolean }) => {
      const t = await loadTopology(file);
      const plan = planLab(t);
      const ledger = await Ledger.read(plan.ledgerFile);
      const { state, problems, info } = await providerFor(t).status(plan);
      const { listeners } = await import('../provision/listeners.ts');
      const lab = state === 'down' ? undefined : await providerFor(t).attach(plan);
      const sockets = lab ? await listeners(lab) : [];
      const status = { lab: t.name, state, problems, resources: ledger?.resources ?? [], info: info ?? null, listeners: sockets };
      if (o.json) return print(JSON.stringify(status, null, 2));
      print(`lab ${t.name}: ${state}${problems.length ? ` (${problems.join('; ')}; run 'migralab down' to clean up)` : ''}`);
      if (info && ledger) {
        for (const n of info.nodes) print(`  ${n.name.padEnd(12)} ${n.address.padEnd(15)} netns ${n.netns}  [${n.roles.join(', ')}]`);
        print(`  ${info.observer.name.padEnd(12)} ${info.observer.address.padEnd(15)} netns ${info.observer.netns}  [observer]`);
        print(`  accelerator ${info.environment.accelerator}, NFS client ${info.nfs.client}, export ${info.nfs.exportPath}`);
        const procs = ledger.resources.filter((r) => r.kind === 'process');
        print(`  processes: ${procs.map((p) => (p.kind === 'process' ? `${p.name}@${p.node} pid ${p.pid}` : '')).join(', ')}`);
        for (const l of sockets) print(`  listening: ${l.node.padEnd(11)} ${l.address.padEnd(22)} ${l.program}${l.config ? ` (${l.config})` : ''}`);
      }
    });

  program
    .command('shell')
    .description("a shell, or one command, inside a lab node (its network, mount and UTS namespaces), to look around as on the tutorial's hosts: hostname, cat /etc/hosts, ss -ltn, ls the instances directory; a command's exit code is passed through")
    .argument('<node>', 'a node of the topology, or its observer')
    .argument('[command...]', 'the command to run instead of a shell (put it after --)')
    .option('--topology <file>', 'topology file', defaultTopology)
    .action(async (name: string, command: string[], o: { topology: string }) => {
      const t = await loadTopology(o.topology);
      const plan = planLab(t);
      const names = [...plan.nodes.map((n) => n.name), plan.observer.name];
      if (!names.includes(name)) throw new MigralabError('USAGE', `no node ${name} in ${o.topology}: expected one of ${names.join(', ')}`);
      const { state } = await providerFor(t).status(plan);
      if (state !== 'up') throw new MigralabError('LAB', `lab ${t.name} is ${state}: run migralab up ${o.topology} first`);
      const lab = await providerFor(t).attach(plan);
      if (!lab) throw new MigralabError('LAB', `lab ${t.name} is not up: run migralab up ${o.topology} first`);
      try {
        const node = name === plan.observer.name ? lab.observer() : lab.nodes.find((n) => n.name === name)!.transport;
        if (command.length) {
          const r = await node.run(command, { check: false, timeoutMs: 3_600_000 });
          if (r.stdout) process.stdout.write(r.stdout.endsWith('\n') ? r.stdout : `${r.stdout}\n`);
          if (r.stderr) process.stderr.write(r.stderr.endsWith('\n') ? r.stderr : `${r.stderr}\n`);
          if (r.exitCode !== 0) throw new PassThroughExit(r.exitCode ?? 1);
          return;
        }
        if (node.kind !== 'local' || !('prefix' in node)) throw new MigralabError('USAGE', `an interactive shell needs the local provider; on ${name} run one command (migralab shell ${name} -- COMMAND), or ssh to the host`);
        log(`migralab: a shell on ${name} (exit to leave)`);
        const { spawnSync } = await import('node:child_process');
        const prefix = (node as { prefix: readonly string[] }).prefix;
        const r = spawnSync(prefix[0] ?? 'env', [...prefix.slice(1), 'env', `PS1=(${t.name}) \\u@\\h:\\w# `, 'bash', '--norc', '-i'], { stdio: 'inherit' });
        if (r.status) throw new PassThroughExit(r.status);
      } finally {
        lab.release();
      }
    });

  program
    .command('tutorial')
    .description('walk the classic "How to operate Live Migrate" tutorial on the lab, step by step: what it says, the commands it asks for run inside the nodes with their real output, a block and a shared-storage migration with the ping live on screen, and their figures side by side')
    .option('--auto', 'run straight through without waiting for Enter (the default when stdin or stdout is not a terminal)')
    .option('--driver <name>', 'migration driver: libvirt (virsh over qemu+tcp, as the tutorial) or qemu (QMP directly)', 'libvirt')
    .option('--topology <file>', 'topology file', defaultTopology)
    .option('--results-dir <dir>', "where the two migrations' results go (block/ and shared/ under it; default results/<timestamp>-tutorial/)")
    .option('--keep-lab', 'leave the lab up afterwards, to look around with migralab shell NODE')
    .action(async (o: { auto?: boolean; driver: string; topology: string; resultsDir?: string; keepLab?: boolean }) => {
      // the tutorial's own two nodes: nova's path is scenarios/tutorial-nova.yaml on the devstack topology
      const tutorialDrivers = ['qemu', 'libvirt'];
      if (!tutorialDrivers.includes(o.driver)) throw new MigralabError('USAGE', `--driver: expected one of ${tutorialDrivers.join(', ')}, got "${o.driver}"${o.driver === 'nova' ? ' (nova runs in a lab with stack: openstack: migralab run scenarios/tutorial-nova.yaml)' : ''}`);
      const { runTutorial, stdinAsk } = await import('../tutorial/tutorial.ts');
      const { defaultResultsDir } = await import('../results/schema.ts');
      // the prompt goes where the tutorial's text goes: both must be a terminal to wait at it
      const auto = o.auto === true || process.stdin.isTTY !== true || process.stdout.isTTY !== true;
      const input = auto ? undefined : stdinAsk();
      try {
        const r = await runTutorial({
          topologyFile: resolve(o.topology),
          driver: o.driver as 'qemu' | 'libvirt',
          auto,
          keepLab: o.keepLab,
          resultsDir: resolve(o.resultsDir ?? defaultResultsDir('tutorial')),
          signal,
          out: print,
          ask: input?.ask,
        });
        if (r.stopped) return;
        const failed = [r.block, r.shared].filter((i) => !i?.ok).length;
        if (failed) throw new MigralabError('MIGRATION', `${failed} of the tutorial's 2 migrations failed (see ${r.resultsDirs.join(', ')})`);
      } finally {
        input?.close();
      }
    });

  program
    .command('doctor')
    .description("check the tutorial's preconditions for live migration on the lab (raises it if needed): CPU, versions, host names, ports, NFS, room, known issues")
    .argument('[topology]', 'topology file', defaultTopology)
    .option('--driver <name...>', 'drivers to check for (qemu, libvirt, nova)', ['qemu'])
    .option('--disk <size>', 'the guest disk a block migration must fit on the destination', '512MiB')
    .option('--disk-data <size>', 'the data in it (with --disk-over-commit)', '200MiB')
    .option('--disk-over-commit', "count the disk's actual size, not its virtual size (nova's disk_over_commit)")
    .option('--keep-lab', 'leave a lab this command raised up')
    .option('--json', 'machine-readable output')
    .action(async (file: string, o: { driver: string[]; disk: string; diskData: string; diskOverCommit?: boolean; keepLab?: boolean; json?: boolean }) => {
      const { doctorCommand } = await import('../doctor/command.ts');
      const r = await doctorCommand({ topologyFile: resolve(file), drivers: o.driver, disk: o.disk, diskData: o.diskData, diskOverCommit: o.diskOverCommit, keepLab: o.keepLab, signal, progress: log });
      print(o.json ? JSON.stringify(r.checks, null, 2) : r.text);
      if (r.failed.length) throw new MigralabError('PREREQ', `${r.failed.length} check(s) failed: ${r.failed.map((c) => c.name).join(', ')}`);
    });

  program
    .command('run')
    .description('run a scenario (raises the lab if needed, takes it down again if it raised it), write results.json, print the comparison')
    .argument('[scenario]', 'scenario file', defaultScenario)
    .option('--topology <file>', 'run on this topology instead of the one the scenario names (e.g. real hosts over ssh)')
    .option('--results-dir <dir>', 'where results.json goes (default results/<timestamp>-<scenario name>/)')
    .option('--keep-lab', 'leave the lab up after the run even if this run raised it')
    .option('--json', 'print results.json to stdout instead of the table')
    .option('--quiet', 'no progress lines')
    .option('--skip-doctor', "do not check the tutorial's preconditions first (for experts)")
    .option('--boot <mode>', 'how guests start: snapshot (restored from a booted snapshot made once per guest size and cached with the image; qemu driver) or cold (every guest boots its kernel)', 'snapshot')
    .option('--no-overlap', "do not prepare an iteration's guest while the previous iteration (another guest) runs its last checks")
    .action(async (file: string, o: { topology?: string; resultsDir?: string; keepLab?: boolean; json?: boolean; quiet?: boolean; skipDoctor?: boolean; boot: string; overlap: boolean }) => {
      if (o.boot !== 'snapshot' && o.boot !== 'cold') throw new MigralabError('USAGE', `--boot: expected snapshot or cold, got "${o.boot}"`);
      const { runScenario } = await import('../runner/run.ts');
      const { consoleReporter, summaryTable } = await import('../results/reporters/console.ts');
      const rep = consoleReporter({ tty: process.stderr.isTTY === true, quiet: o.quiet });
      try {
        const r = await runScenario({ scenarioFile: file, topologyFile: o.topology, resultsDir: o.resultsDir, keepLab: o.keepLab, skipDoctor: o.skipDoctor, boot: o.boot, overlap: o.overlap, signal, events: rep });
        rep.close();
        const { formatThresholds } = await import('../results/thresholds.ts');
        if (o.json) print(JSON.stringify(r.results, null, 2));
        else {
          print(summaryTable(r.results));
          if (r.checks.length) print(`\nthresholds:\n${formatThresholds(r.checks)}`);
          print(`results: ${r.resultsFile} (+ ${r.exports.map((f) => f.split('/').pop()).join(', ')})`);
        }
        if (stepSummary) {
          const { readFile, appendFile } = await import('node:fs/promises');
          await appendFile(stepSummary, await readFile(r.exports.find((f) => f.endsWith('.md'))!, 'utf8'));
        }
        const broken = r.checks.filter((c) => !c.held);
        if (r.failed > 0) throw new MigralabError('MIGRATION', r.results.iterations.some((i) => i.expected) ? `${r.failed} of ${r.results.iterations.length} iterations did not end as expected (see ${r.resultsFile})` : `${r.failed} of ${r.results.iterations.length} migrations failed (see ${r.resultsFile})`);
        if (broken.length > 0) throw new MigralabError('THRESHOLD', `${broken.length} of ${r.checks.length} thresholds did not hold: ${broken.map((c) => c.name).join('; ')}`);
      } finally {
        rep.close();
      }
    });

  program
    .command('report')
    .description('write one self-contained HTML report (opens offline) of one or more results directories, and the CSV/JUnit/Markdown exports of each')
    .argument('<results...>', 'results directories (or results.json files)')
    .option('-o, --output <file>', 'HTML file to write (default: report.html in the first results directory)')
    .option('--no-exports', 'write only the HTML report')
    .action(async (dirs: string[], o: { output?: string; exports: boolean }) => {
      const { loadResults } = await import('../results/load.ts');
      const { renderHtml } = await import('../results/reporters/html/page.ts');
      const { writeReports: writeExports } = await import('../results/reporters/index.ts');
      const { scenarioThresholdChecks } = await import('../results/thresholds.ts');
      const { writeFile } = await import('node:fs/promises');
      const { dirname, join } = await import('node:path');
      const { statSync } = await import('node:fs');
      const runs = [];
      for (const d of dirs) {
        const results = await loadResults(d);
        const dir = statSync(d).isDirectory() ? d : dirname(d);
        runs.push({ path: dir, results });
        if (o.exports) {
          const checks = scenarioThresholdChecks(results);
          for (const f of await writeExports(dir, results, checks)) print(`wrote ${f}`);
        }
      }
      const out = resolve(o.output ?? join(runs[0]!.path, 'report.html'));
      await writeFile(out, renderHtml(runs));
      print(`wrote ${out}`);
    });

  program
    .command('compare')
    .description('compare two runs: change in median per metric with its 95% bootstrap interval; exit 1 on a regression')
    .argument('<baseline>', 'baseline results directory (or results.json)')
    .argument('<current>', 'current results directory (or results.json)')
    .option('--tolerance <percent>', 'a change in median beyond this percent of the baseline (and outside the interval) is a regression (default: the scenario\'s compare.tolerancePct, else 10)')
    .option('--seed <n>', 'bootstrap seed', '1')
    .option('--json', 'machine-readable output')
    .action(async (baseline: string, current: string, o: { tolerance?: string; seed: string; json?: boolean }) => {
      const { loadResults } = await import('../results/load.ts');
      const { compareResults, formatComparison } = await import('../results/compare.ts');
      const { scenarioSchema } = await import('../config/scenario.ts');
      const b = await loadResults(baseline);
      const c = await loadResults(current);
      const fromScenario = scenarioSchema.safeParse(c.scenario.asRun);
      let tolerancePct = fromScenario.success ? (fromScenario.data.compare?.tolerancePct ?? 10) : 10;
      if (o.tolerance !== undefined) {
        tolerancePct = Number(o.tolerance);
        if (!Number.isFinite(tolerancePct) || tolerancePct < 0) throw new MigralabError('USAGE', `--tolerance: expected a percentage >= 0, got "${o.tolerance}"`);
      }
      const seed = Number(o.seed);
      if (!Number.isInteger(seed)) throw new MigralabError('USAGE', `--seed: expected a whole number, got "${o.seed}"`);
      const cmp = compareResults(b, c, { tolerancePct, seed });
      if (o.json) print(JSON.stringify(cmp, null, 2));
      else print(formatComparison(cmp));
      for (const w of cmp.environmentWarnings) log(`warning: ${w}`);
      if (cmp.regressions > 0) throw new MigralabError('REGRESSION', `${cmp.regressions} regression(s) beyond ${tolerancePct}% against ${baseline}`);
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const ac = new AbortController();
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) {
      process.stderr.write(`\n${sig} again: exiting now; run 'migralab down' to clean up\n`);
      process.exit(130);
    }
    process.stderr.write(`\n${sig}: stopping after cleanup (press Ctrl-C again to exit at once)\n`);
    ac.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    // CI job summaries (GitHub Actions and compatible runners) get the Markdown summary of a run.
    await buildProgram(undefined, ac.signal, process.env.GITHUB_STEP_SUMMARY || undefined).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    if (e instanceof PassThroughExit) return e.exitCode;
    process.stderr.write(`migralab: ${(e as Error).message}\n`);
    return exitCodeOf(e);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
