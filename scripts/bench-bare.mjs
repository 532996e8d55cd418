#!/usr/bin/env node
// migralab against a bare script (scripts/bare-migration.mjs: QMP by hand, one disk, no
// probes, no sampling) on the same lab, same guest size, same ping interval, in one run:
// rounds alternate bare and migralab so both see the same machine. Prints, per strategy,
// the medians of the migration duration and of the ping interruption (largest gap) and
// the ratio migralab / bare.
//
//   node scripts/bench-bare.mjs [--rounds 3] [--runs 3] [--strategies block,shared]
//        [--memory 256] [--disk 512] [--data 200] [--interval 10] [--scenario-extra YAML]
//        [--json]
//
// --scenario-extra adds YAML to migralab's side (e.g. 'verify: { ram: false }') to show
// what one of its options costs.
import { $, argv, fs, os, path } from 'zx';
import { median } from './figures.mjs';

$.verbose = false;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const rounds = Number(argv.rounds ?? 3);
const runs = Number(argv.runs ?? 3);
const strategies = String(argv.strategies ?? 'block,shared').split(',');
const memory = Number(argv.memory ?? 256);
const disk = Number(argv.disk ?? 512);
const data = Number(argv.data ?? 200);
const interval = Number(argv.interval ?? 10);
const topology = path.join(root, 'scenarios/topologies/two-node.lab.yaml');
const log = (s) => console.error(`bench-bare: ${s}`);

const tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'migralab-bench-bare-'));
const wasUp = JSON.parse((await $`node ${root}/scripts/migralab.js status ${topology} --json`).stdout).state === 'up';
await $`node ${root}/scripts/migralab.js up ${topology}`;
const figures = {};
try {
  for (const strategy of strategies) {
    figures[strategy] = { bare: { durationMs: [], maxGapMs: [] }, migralab: { durationMs: [], maxGapMs: [] } };
    const scenario = path.join(tmp, `${strategy}.yaml`);
    await fs.writeFile(
      scenario,
      [
        `name: bench-bare-${strategy}`,
        `topology: ${topology}`,
        `strategies: [${strategy}]`,
        `repetitions: ${runs}`,
        `guest: { memory: ${memory}MiB, disk: ${disk}MiB, diskData: ${data}MiB }`,
        `ping: { intervalMs: ${interval} }`,
        ...(argv['scenario-extra'] ? [String(argv['scenario-extra'])] : []),
        '',
      ].join('\n'),
    );
    for (let r = 1; r <= rounds; r++) {
      const bare = JSON.parse(
        (await $`node ${root}/scripts/bare-migration.mjs --strategy ${strategy} --runs ${runs} --memory ${memory} --disk ${disk} --data ${data} --interval ${interval} --json`).stdout,
      );
      for (const x of bare.runs) {
        figures[strategy].bare.durationMs.push(x.durationMs);
        figures[strategy].bare.maxGapMs.push(x.maxGapMs);
      }
      const dir = path.join(tmp, `${strategy}-${r}`);
      await $`node ${root}/scripts/migralab.js run ${scenario} --results-dir ${dir} --quiet`.nothrow();
      const res = JSON.parse(await fs.readFile(path.join(dir, 'results.json'), 'utf8'));
      for (const it of res.iterations.filter((i) => i.ok)) {
        figures[strategy].migralab.durationMs.push(it.durationMs);
        figures[strategy].migralab.maxGapMs.push(it.ping.maxGapMs);
      }
      log(`${strategy} round ${r}/${rounds}: bare ${bare.runs.map((x) => x.maxGapMs.toFixed(0)).join(' ')} ms, migralab ${res.iterations.map((i) => (i.ping.maxGapMs ?? NaN).toFixed(0)).join(' ')} ms (largest ping gaps)`);
    }
  }
} finally {
  if (!wasUp) await $`node ${root}/scripts/migralab.js down ${topology}`;
  await fs.remove(tmp);
}

const out = {};
console.log(`${'strategy'.padEnd(9)}${'metric'.padEnd(16)}${'bare median'.padStart(13)}${'migralab median'.padStart(17)}${'ratio'.padStart(8)}   (n bare / migralab)`);
for (const [strategy, f] of Object.entries(figures)) {
  out[strategy] = {};
  for (const metric of ['durationMs', 'maxGapMs']) {
    const b = median(f.bare[metric]);
    const m = median(f.migralab[metric]);
    const ratio = b && m ? m / b : null;
    out[strategy][metric] = { bare: b, migralab: m, ratio, n: [f.bare[metric].length, f.migralab[metric].length] };
    const name = metric === 'durationMs' ? 'duration ms' : 'interruption ms';
    console.log(
      `${strategy.padEnd(9)}${name.padEnd(16)}${(b?.toFixed(1) ?? '-').padStart(13)}${(m?.toFixed(1) ?? '-').padStart(17)}${(ratio ? `${ratio.toFixed(2)}x` : '-').padStart(8)}   (${f.bare[metric].length} / ${f.migralab[metric].length})`,
    );
  }
}
if (argv.json) console.log(JSON.stringify(out));
