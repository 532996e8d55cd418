// Benchmark: prints medians of lab up (image cached), lab down, the default
// scenario's wall time end to end, and each strategy's migration wall time.
// Usage: node --import tsx scripts/bench.ts [--runs N] [--scenario FILE]
// (a script, not a test: it measures, it asserts nothing)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { parseArgs } from 'node:util';
import { loadScenario } from '../lab/config/scenario.ts';
import { loadTopology } from '../lab/config/topology.ts';
import { planLab } from '../lab/provision/plan.ts';
import { up, down } from '../lab/provision/local.ts';
import { runScenario } from '../lab/runner/run.ts';
import { median } from '../lab/measure/stats.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, scenario: { type: 'string', default: 'scenarios/block-vs-shared.yaml' } } });
const runs = Number(values.runs);
const scenarioFile = resolve(values.scenario!);
const scenario = await loadScenario(scenarioFile);
const topologyFile = resolve(dirname(scenarioFile), scenario.topology);
const topology = await loadTopology(topologyFile);
const plan = planLab(topology);

await down(plan);
await up(topology, topologyFile); // builds the image once, so the timed ups use the cache
await down(plan);

const upMs: number[] = [];
const downMs: number[] = [];
for (let i = 0; i < runs; i++) {
  let t = performance.now();
  await up(topology, topologyFile);
  upMs.push(performance.now() - t);
  t = performance.now();
  await down(plan);
  downMs.push(performance.now() - t);
}

const wallMs: number[] = [];
const perStrategy = new Map<string, number[]>();
const downtime = new Map<string, number[]>();
const gap = new Map<string, number[]>();
for (let i = 0; i < runs; i++) {
  const dir = mkdtempSync(join(tmpdir(), 'mlbench-'));
  const t = performance.now();
  const r = await runScenario({ scenarioFile, resultsDir: dir });
  wallMs.push(performance.now() - t);
  for (const it of r.results.iterations) {
    if (!it.ok) continue;
    const push = (m: Map<string, number[]>, v: number | null) => v !== null && (m.get(it.strategy) ?? m.set(it.strategy, []).get(it.strategy)!).push(v);
    push(perStrategy, it.durationMs);
    push(downtime, it.qemu.downtimeMs);
    push(gap, it.ping.maxGapMs);
  }
  rmSync(dir, { recursive: true });
}

const f = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(1));
console.log(`migralab benchmark: ${runs} runs of ${scenario.name} (${scenario.repetitions} x ${scenario.strategies.join(' + ')}) on this machine`);
console.log(`up (image cached)        median ${f(median(upMs))} ms   [${upMs.map(f).join(', ')}]`);
console.log(`down                     median ${f(median(downMs))} ms   [${downMs.map(f).join(', ')}]`);
console.log(`scenario end to end      median ${f(median(wallMs))} ms   [${wallMs.map(f).join(', ')}]`);
for (const [s, v] of perStrategy)
  console.log(`${s.padEnd(7)} migration wall   median ${f(median(v))} ms over ${v.length}; qemu downtime median ${f(median(downtime.get(s) ?? []))} ms; ping interruption median ${f(median(gap.get(s) ?? []))} ms`);
const b = median(perStrategy.get('block') ?? []);
const s = median(perStrategy.get('shared') ?? []);
if (b !== undefined && s !== undefined) console.log(`block/shared migration wall time ratio of medians: ${(b / s).toFixed(2)}x`);
