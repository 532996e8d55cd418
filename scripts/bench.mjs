#!/usr/bin/env node
// Benchmark: prints medians of lab up (image cached), lab down, the default scenario's
// wall time end to end, and each strategy's migration wall time, interruption and QEMU
// downtime. A script, not a test: it measures, it asserts nothing.
//
//   node scripts/bench.mjs [--runs 3] [--scenario scenarios/block-vs-shared.yaml] [--topology FILE]
import { $, argv, fs, os, path } from 'zx';
import { median, fmt1 } from './figures.mjs';

$.verbose = false;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const cli = path.join(root, 'scripts/migralab.js');
const runs = Number(argv.runs ?? 3);
const scenario = path.resolve(argv.scenario ?? path.join(root, 'scenarios/block-vs-shared.yaml'));
const topology = path.resolve(argv.topology ?? path.join(root, 'scenarios/topologies/two-node.lab.yaml'));
const f = fmt1;
const timed = async (fn) => {
  const t = performance.now();
  await fn();
  return performance.now() - t;
};

await $`node ${cli} down ${topology}`;
await $`node ${cli} up ${topology}`; // builds the image once, so the timed ups use the cache
await $`node ${cli} down ${topology}`;
const upMs = [];
const downMs = [];
for (let i = 0; i < runs; i++) {
  upMs.push(await timed(() => $`node ${cli} up ${topology}`));
  downMs.push(await timed(() => $`node ${cli} down ${topology}`));
}

const wallMs = [];
const per = {};
const sizing = [];
for (let i = 0; i < runs; i++) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mlbench-'));
  wallMs.push(await timed(() => $`node ${cli} run ${scenario} --topology ${topology} --results-dir ${dir} --quiet`.nothrow()));
  const r = JSON.parse(await fs.readFile(path.join(dir, 'results.json'), 'utf8'));
  if (r.sizing) sizing.push(r.sizing);
  for (const it of r.iterations.filter((x) => x.ok)) {
    const p = (per[it.strategy] ??= { duration: [], downtime: [], gap: [] });
    p.duration.push(it.durationMs);
    p.downtime.push(it.qemu.downtimeMs);
    p.gap.push(it.ping.maxGapMs);
  }
  await fs.remove(dir);
}

console.log(`migralab benchmark: ${runs} runs of ${path.relative(root, scenario)} on this machine (each CLI call includes Node's start)`);
console.log(`up (image cached)        median ${f(median(upMs))} ms   [${upMs.map(f).join(', ')}]`);
console.log(`down                     median ${f(median(downMs))} ms   [${downMs.map(f).join(', ')}]`);
console.log(`scenario end to end      median ${f(median(wallMs))} ms   [${wallMs.map(f).join(', ')}]`);
for (const [s, v] of Object.entries(per))
  console.log(`${s.padEnd(7)} migration wall   median ${f(median(v.duration))} ms over ${v.duration.length}; qemu downtime median ${f(median(v.downtime))} ms; ping interruption median ${f(median(v.gap))} ms`);
const b = median(per.block?.duration ?? []);
const s = median(per.shared?.duration ?? []);
if (b != null && s != null) console.log(`block/shared migration wall time ratio of medians: ${(b / s).toFixed(2)}x`);
// Sizing a CI runner: the harness's CPU per run, each guest's QEMU peak memory, and how many such
// QEMUs this host's available memory holds (memory alone: under TCG each running guest wants a core too).
if (sizing.length) {
  const peak = Math.max(...sizing.flatMap((z) => Object.values(z.peakRssBytesByGuest)));
  const avail = median(sizing.map((z) => z.hostMemAvailableBytes).filter((v) => v !== null));
  console.log(`harness CPU per run      median ${f(median(sizing.map((z) => z.harnessCpuMs)))} ms; QEMU peak RSS (largest guest) ${(peak / 2 ** 20).toFixed(1)} MiB`);
  if (avail != null) console.log(`guests of this size this host holds at once, by memory: ${Math.floor(avail / peak)} (${(avail / 2 ** 30).toFixed(1)} GiB available); it has ${os.cpus().length} cores, and under TCG a guest that works keeps one busy`);
}
