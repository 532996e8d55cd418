#!/usr/bin/env node
// Benchmark: the default run (migralab run, scenarios/block-vs-shared.yaml) end to end, the slow
// path against the fast one, alternated in one sitting so drift hits both alike:
//   slow: --boot cold --no-overlap  (every guest boots its kernel; iterations one after another)
//   fast: the defaults              (guests restored from a booted snapshot; an iteration prepares
//                                    its guest while the previous one runs its last checks)
// Per path: the wall time of the whole command, the guests' start, and per cell the medians of
// duration, ping interruption, QEMU downtime, the guest's clock loss and its loop's longest
// stall over all its iterations, then fast/slow ratios and whether each fast median lies within
// the slow path's own range (min..max). A script, not a test: it measures, it asserts nothing.
//
//   node scripts/bench-default.mjs [--rounds 2] [--scenario scenarios/block-vs-shared.yaml]
import { $, argv, fs, os, path } from 'zx';
import { median, fmt1 } from './figures.mjs';

$.verbose = false;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const cli = path.join(root, 'scripts/migralab.js');
const rounds = Number(argv.rounds ?? 2);
const scenario = path.resolve(argv.scenario ?? path.join(root, 'scenarios/block-vs-shared.yaml'));
const paths = { slow: ['--boot', 'cold', '--no-overlap'], fast: [] };
const f = fmt1;

const per = { slow: { wall: [], boot: [], cells: new Map(), failed: 0 }, fast: { wall: [], boot: [], cells: new Map(), failed: 0 } };
// one fast run first, outside the figures: it makes the snapshot of this shape if it is not cached yet
{
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mlbench-default-'));
  await $`node ${cli} run ${scenario} --results-dir ${dir} --quiet`.nothrow();
  await fs.remove(dir);
}
for (let i = 0; i < rounds; i++)
  for (const name of i % 2 ? ['fast', 'slow'] : ['slow', 'fast']) {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mlbench-default-'));
    const t = performance.now();
    const r0 = await $`node ${cli} run ${scenario} ${paths[name]} --results-dir ${dir} --quiet`.nothrow();
    const wall = performance.now() - t;
    const p = per[name];
    p.wall.push(wall);
    const r = JSON.parse(await fs.readFile(path.join(dir, 'results.json'), 'utf8'));
    const boots = r.sizing?.boot ?? [];
    p.boot.push(Math.max(...boots.map((b) => b.ms)));
    for (const it of r.iterations) {
      if (!it.ok) {
        p.failed++;
        continue;
      }
      const c = p.cells.get(it.cell.label) ?? { duration: [], gap: [], downtime: [], clock: [], probe: [] };
      p.cells.set(it.cell.label, c);
      c.duration.push(it.durationMs);
      c.gap.push(it.ping.maxGapMs);
      c.downtime.push(it.qemu?.downtimeMs ?? null);
      c.clock.push(it.guest?.clockLossMs ?? null);
      c.probe.push(it.guest?.probeMaxGapMs ?? null);
    }
    console.error(`round ${i + 1} ${name}: exit ${r0.exitCode}, ${f(wall)} ms, guests up in ${f(p.boot.at(-1))} ms (${boots.map((b) => b.mode).join(', ')})`);
    await fs.remove(dir);
  }

const r2 = (a, b) => (a == null || b == null || b === 0 ? '-' : `${(a / b).toFixed(2)}x`);
console.log(`migralab default-run benchmark: ${rounds} round(s) of ${path.relative(root, scenario)}, slow (${paths.slow.join(' ')}) and fast (defaults) alternated; medians`);
for (const name of ['slow', 'fast']) {
  const p = per[name];
  console.log(`${name}: end to end ${f(median(p.wall))} ms [${p.wall.map(f).join(', ')}]; guests up ${f(median(p.boot))} ms${p.failed ? `; ${p.failed} iterations failed` : ''}`);
}
console.log(`end to end fast/slow: ${r2(median(per.fast.wall), median(per.slow.wall))}; guests up fast/slow: ${r2(median(per.fast.boot), median(per.slow.boot))}`);
const within = (v, xs) => {
  const s = xs.filter((x) => typeof x === 'number');
  return v == null || !s.length ? '-' : v >= Math.min(...s) && v <= Math.max(...s) ? 'within' : 'OUTSIDE';
};
for (const [label, slow] of per.slow.cells) {
  const fast = per.fast.cells.get(label);
  if (!fast) continue;
  for (const [k, what] of [['duration', 'duration'], ['gap', 'ping interruption'], ['downtime', 'qemu downtime'], ['clock', 'guest clock loss'], ['probe', 'guest loop stall']]) {
    const s = median(slow[k]);
    const q = median(fast[k]);
    console.log(`${label.padEnd(7)} ${what.padEnd(18)} slow ${f(s).padStart(7)} ms (${f(Math.min(...slow[k].filter(Number.isFinite)))}..${f(Math.max(...slow[k].filter(Number.isFinite)))}, n=${slow[k].length})  fast ${f(q).padStart(7)} ms (n=${fast[k].length})  fast/slow ${r2(q, s)}  ${within(q, slow[k])} the slow range`);
  }
}
