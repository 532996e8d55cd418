#!/usr/bin/env node
// Benchmark: drain time of K guests leaving one node at N = 1, 2, 4 (scenarios/drain.yaml on
// the four-node lab), block and shared: per (strategy, N) the median over --runs runs of the
// drain time, the worst guest interruption and the MiB the drained node sent, then the ratios
// block/shared and against N=1. A script, not a test: it measures, it asserts nothing.
//
//   node scripts/bench-drain.mjs [--runs 1] [--scenario scenarios/drain.yaml] [--topology FILE]
import { $, argv, fs, os, path } from 'zx';
import { median, fmt1 } from './figures.mjs';

$.verbose = false;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const cli = path.join(root, 'scripts/migralab.js');
const runs = Number(argv.runs ?? 1);
const scenario = path.resolve(argv.scenario ?? path.join(root, 'scenarios/drain.yaml'));
const extra = argv.topology ? ['--topology', path.resolve(argv.topology)] : [];
const f = fmt1;

const per = new Map();
let guests;
let from;
const wall = [];
for (let i = 0; i < runs; i++) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mlbench-drain-'));
  const t = performance.now();
  await $`node ${cli} run ${scenario} ${extra} --results-dir ${dir} --quiet`.nothrow();
  wall.push(performance.now() - t);
  const r = JSON.parse(await fs.readFile(path.join(dir, 'results.json'), 'utf8'));
  for (const d of r.drains ?? []) {
    guests = d.guests;
    from = d.from;
    const k = `${d.strategy}|${d.concurrency}`;
    const p = per.get(k) ?? { strategy: d.strategy, n: d.concurrency, total: [], gap: [], mib: [], failed: 0 };
    per.set(k, p);
    if (!d.ok) {
      p.failed++;
      continue;
    }
    p.total.push(d.totalMs);
    p.gap.push(Math.max(...d.migrations.map((m) => m.maxGapMs ?? NaN)));
    p.mib.push(d.wireBytes === null ? null : d.wireBytes / 2 ** 20);
  }
  await fs.remove(dir);
}

console.log(`migralab drain benchmark: ${runs} run(s) of ${path.relative(root, scenario)}: ${guests} guests leave ${from}; medians over the runs' successful drains`);
console.log(`run end to end           median ${f(median(wall))} ms   [${wall.map(f).join(', ')}]`);
const rows = [...per.values()].sort((a, b) => a.n - b.n || a.strategy.localeCompare(b.strategy));
for (const p of rows)
  console.log(`${p.strategy.padEnd(6)} N=${String(p.n).padEnd(2)} drain time median ${f(median(p.total))} ms over ${p.total.length}${p.failed ? ` (${p.failed} failed)` : ''}; worst interruption ${f(median(p.gap))} ms; ${f(median(p.mib))} MiB sent`);
const at = (s, n) => median(per.get(`${s}|${n}`)?.total ?? []);
const ns = [...new Set(rows.map((p) => p.n))];
const r2 = (a, b) => (a == null || b == null || b === 0 ? '-' : `${(a / b).toFixed(2)}x`);
console.log(`block/shared drain time: ${ns.map((n) => `N=${n} ${r2(at('block', n), at('shared', n))}`).join(', ')}`);
for (const s of ['block', 'shared']) console.log(`${s} drain time against N=${ns[0]}: ${ns.slice(1).map((n) => `N=${n} ${r2(at(s, n), at(s, ns[0]))}`).join(', ')}`);
