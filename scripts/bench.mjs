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
for (let i = 0; i < runs; i++) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'mlbench-'));
  wallMs.push(await timed(() => $`node ${cli} run ${scenario} --topology ${topology} --results-dir ${dir} --quiet`.nothrow()));
  const r = JSON.parse(await fs.readFile(path.join(dir, 'results.json'), 'utf8'));
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
