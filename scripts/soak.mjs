#!/usr/bin/env node
// Soak benchmark: N back-and-forth migrations (default 100: 50 block, 50 shared) of guests
// under memory and disk load, each one proven (running on the destination, source gone, the
// disk probe and the guest's RAM check intact). Prints ok/total per strategy, the medians, and
// every iteration that was not ok. A script, not a test: it measures, it asserts nothing
// (exit 0 even when some failed; the figures say so).
//
//   node scripts/soak.mjs [--migrations 100] [--memory-rate 20] [--disk-rate 4] [--topology FILE] [--results-dir DIR]
import { $, argv, fs, os, path } from 'zx';
import { median, fmt1 } from './figures.mjs';

$.verbose = false;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const cli = path.join(root, 'scripts/migralab.js');
const migrations = Number(argv.migrations ?? 100);
const perStrategy = Math.max(1, Math.ceil(migrations / 2));
if (perStrategy > 100) throw new Error('--migrations: at most 200 (100 repetitions per strategy)');
const topology = path.resolve(argv.topology ?? path.join(root, 'scenarios/topologies/two-node.lab.yaml'));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mlsoak-'));
// the results outlive the script (its scenario file does not)
const resultsDir = path.resolve(argv['results-dir'] ?? path.join(os.tmpdir(), `mlsoak-results-${new Date().toISOString().replace(/[:.]/g, '-')}`));
const scenario = path.join(dir, 'soak.yaml');
fs.writeFileSync(
  scenario,
  [
    'name: soak',
    `topology: ${topology}`,
    'strategies: [block, shared]',
    `repetitions: ${perStrategy}`,
    'guest: { memory: 256MiB, disk: 256MiB, diskData: 64MiB }',
    'ping: { intervalMs: 10 }',
    `workload: { memory: { rateMiBs: ${Number(argv['memory-rate'] ?? 20)}, workingSet: 64MiB }, disk: { rateMiBs: ${Number(argv['disk-rate'] ?? 4)} } }`,
    'timeoutSeconds: 120',
    '',
  ].join('\n'),
);

const f = fmt1;

const t0 = performance.now();
const r = await $`node ${cli} run ${scenario} --results-dir ${resultsDir} --quiet`.nothrow();
const wallS = (performance.now() - t0) / 1000;
const results = JSON.parse(fs.readFileSync(path.join(resultsDir, 'results.json'), 'utf8'));
console.log(`soak: ${results.iterations.length} migrations in ${wallS.toFixed(1)} s (exit ${r.exitCode}), memory ${argv['memory-rate'] ?? 20} MiB/s, disk ${argv['disk-rate'] ?? 4} MiB/s; results ${resultsDir}`);
for (const s of ['block', 'shared']) {
  const its = results.iterations.filter((i) => i.strategy === s);
  const ok = its.filter((i) => i.ok);
  const proven = ok.filter((i) => i.verified.diskIntact && i.verified.ramIntact === true && i.verified.onDestination && i.verified.sourceGone);
  console.log(
    `  ${s.padEnd(6)} ok ${ok.length}/${its.length} (disk and RAM proven in ${proven.length}); median duration ${f(median(ok.map((i) => i.durationMs)))} ms, ` +
      `interruption ${f(median(ok.map((i) => i.ping.maxGapMs)))} ms, qemu downtime ${f(median(ok.map((i) => i.qemu.downtimeMs)))} ms`,
  );
}
for (const i of results.iterations.filter((i) => !i.ok)) console.log(`  not ok: #${i.index + 1} ${i.strategy} ${i.source} -> ${i.destination}: ${i.error}`);
fs.rmSync(dir, { recursive: true, force: true });
