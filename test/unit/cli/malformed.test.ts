/**
 * Bad input, table-driven: every malformed scenario, topology, results file and command line
 * is refused with exit 2, says where (file:line:col and the field, or the flag), and starts
 * nothing (no state directory, no namespace of the lab).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { execFileSync } from 'node:child_process';
import { runMain } from './capture.ts';

let dir: string;
const LAB = 'mlbad';
const stateDir = () => join(dir, 'state');
const goodTopology = () => join(dir, 'good.lab.yaml');

const topology = (over = '') =>
  [
    `name: ${LAB}`,
    'cidr: 10.79.0.0/24',
    'observer: { name: observer, address: 10.79.0.2 }',
    'nodes:',
    '  - { name: controller, roles: [nfs-server, compute], address: 10.79.0.11 }',
    '  - { name: compute1, roles: [nfs-client, compute], address: 10.79.0.12 }',
    `paths: { state: ${join(dir, 'state')}, imageCache: ${join(dir, 'cache')} }`,
    over,
  ].join('\n');

/** [what, scenario lines after `name` and `topology`, the field the error must name] */
const scenarios: [string, string, string][] = [
  ['unknown strategy', 'strategies: [block, sharde]', 'strategies[1]'],
  ['duplicate strategy', 'strategies: [shared, shared]', 'strategies[1]'],
  ['empty strategies', 'strategies: []', 'strategies'],
  ['strategies not a list', 'strategies: block', 'strategies'],
  ['unknown driver', 'drivers: [xen]', 'drivers[0]'],
  ['repetitions 0', 'repetitions: 0', 'repetitions'],
  ['repetitions fractional', 'repetitions: 2.5', 'repetitions'],
  ['repetitions a word', 'repetitions: many', 'repetitions'],
  ['memory not a size', 'guest: { memory: 12 apples }', 'guest.memory'],
  ['memory too small', 'guest: { memory: 1MiB }', 'guest.memory'],
  ['memory absurd', 'guest: { memory: 100000GiB }', 'guest.memory'],
  ['disk not a size', 'guest: { disk: big }', 'guest.disk'],
  ['disk data above the disk', 'guest: { disk: 64MiB, diskData: 1GiB }', 'guest.diskData'],
  ['negative size', 'guest: { memory: -256MiB }', 'guest.memory'],
  ['unknown guest field', 'guest: { cpus: 4 }', 'guest.cpus'],
  ['ping interval 0', 'ping: { intervalMs: 0 }', 'ping.intervalMs'],
  ['ping interval fractional', 'ping: { intervalMs: 0.5 }', 'ping.intervalMs'],
  ['ping interval a word', 'ping: { intervalMs: fast }', 'ping.intervalMs'],
  ['link rate not a rate', 'link: { rate: quick }', 'link.rate'],
  ['link loss above 100', 'link: { lossPct: 150 }', 'link.lossPct'],
  ['link delay negative', 'link: { delayMs: -5 }', 'link.delayMs'],
  ['memory workload negative', 'workload: { memory: { rateMiBs: -1 } }', 'workload.memory.rateMiBs'],
  ['working set above the guest', 'guest: { memory: 128MiB }\nworkload: { memory: { rateMiBs: 5, workingSet: 512MiB } }', 'workload.memory.workingSet'],
  ['disk workload a word', 'workload: { disk: { rateMiBs: lots } }', 'workload.disk.rateMiBs'],
  ['unknown workload', 'workload: { cpu: { load: 1 } }', 'workload.cpu'],
  ['downtime limit negative', 'tunables: { downtimeLimitMs: -1 }', 'tunables.downtimeLimitMs'],
  ['multifd a word', 'tunables: { multifdChannels: some }', 'tunables.multifdChannels'],
  ['auto-converge not a boolean', 'tunables: { autoConverge: perhaps }', 'tunables.autoConverge'],
  ['unknown tunable', 'tunables: { compress: true }', 'tunables.compress'],
  ['copy mode unknown', 'mirror: { copyMode: fast }', 'mirror.copyMode'],
  ['tls mode unknown', 'security: { tls: x509 }', 'security.tls'],
  ['placement unknown', 'placement: random', 'placement'],
  ['bootOn a node the topology does not have', 'repetitions: 1\nbootOn: compute7', 'bootOn'],
  ['drain of a node the topology does not have', 'repetitions: 1\nplacement: { drain: compute7 }', 'placement.drain'],
  ['drain without a node', 'placement: { drain: "" }', 'placement.drain'],
  ['concurrency above guests', 'placement: { drain: compute1 }\nguests: 2\nconcurrency: [1, 4]', 'concurrency[1]'],
  ['concurrency 0', 'placement: { drain: compute1 }\nguests: 2\nconcurrency: 0', 'concurrency'],
  ['several guests without a drain', 'guests: 3', 'guests'],
  ['concurrency without a drain', 'concurrency: 2', 'concurrency'],
  ['faults in a drain', 'placement: { drain: compute1 }\nfaults: [{ kind: kill-destination, during: ram }]', 'faults'],
  ['bootOn not a string', 'bootOn: [compute1]', 'bootOn'],
  ['tls psk with the libvirt driver', 'drivers: [libvirt]\nsecurity: { tls: psk }', 'security.tls'],
  ['tls axis psk with the libvirt driver', 'drivers: [qemu, libvirt]\naxes: { security.tls: [none, psk] }', 'axes.security.tls[1]'],
  ['hypervisor build unknown', 'hypervisor: { qemu: latest }', 'hypervisor.qemu'],
  ['hypervisor relative path', 'hypervisor: { qemu: bin/qemu }', 'hypervisor.qemu'],
  ['verify.ram not a boolean', 'verify: { ram: 1 }', 'verify.ram'],
  ['axis of an unknown field', 'axes: { guest.colour: [red] }', 'axes.guest.colour'],
  ['axis with no values', 'axes: { tunables.downtimeLimitMs: [] }', 'axes.tunables.downtimeLimitMs'],
  ['axis with a bad value', 'axes: { tunables.downtimeLimitMs: [30, soon] }', 'axes.tunables.downtimeLimitMs[1]'],
  ['timeout 0', 'timeoutSeconds: 0', 'timeoutSeconds'],
  ['stall a word', 'stallSeconds: long', 'stallSeconds'],
  ['fault of an unknown kind', 'faults: [{ kind: meteor }]', 'faults[0].kind'],
  ['fault at an unknown phase', 'faults: [{ kind: kill-destination, during: lunch }]', 'faults[0].during'],
  ['fault both during and afterMs', 'faults: [{ kind: kill-destination, during: ram, afterMs: 100 }]', 'faults[0].afterMs'],
  ['cut-link with a negative forMs', 'faults: [{ kind: cut-link, during: ram, forMs: -1 }]', 'faults[0].forMs'],
  ['unknown top-level field', 'colour: blue', 'colour'],
  ['name missing', '!name', 'name'],
  ['topology not a string', 'topology2: 3', 'topology2'],
  ['YAML syntax', 'guest: { memory: [256MiB }', ''],
  ['duplicate key', 'repetitions: 3\nrepetitions: 4', ''],
  ['YAML alias bomb', ['a: &a [x, x, x, x, x, x, x, x, x]', ...'bcdefg'.split('').map((k, i) => `${k}: &${k} [${Array(9).fill(`*${'abcdef'[i]}`).join(', ')}]`)].join('\n'), ''],
];

/** [what, topology lines added to (or replacing, for !field) a good topology, the field] */
const topologies: [string, string, string][] = [
  ['cidr with host bits', 'cidr: 10.79.0.1/24', 'cidr'],
  ['cidr prefix 33', 'cidr: 10.79.0.0/33', 'cidr'],
  ['address not IPv4', 'observer: { name: observer, address: 10.79.0 }', 'observer.address'],
  ['node name with capitals', 'nodes:\n  - { name: Controller, roles: [nfs-server, compute], address: 10.79.0.11 }\n  - { name: compute1, roles: [nfs-client, compute], address: 10.79.0.12 }', 'nodes[0].name'],
  ['one node', 'nodes:\n  - { name: controller, roles: [nfs-server, compute], address: 10.79.0.11 }', 'nodes'],
  ['unknown role', 'nodes:\n  - { name: controller, roles: [storage], address: 10.79.0.11 }\n  - { name: compute1, roles: [nfs-client, compute], address: 10.79.0.12 }', 'nodes[0].roles[0]'],
  ['no roles', 'nodes:\n  - { name: controller, roles: [], address: 10.79.0.11 }\n  - { name: compute1, roles: [nfs-client, compute], address: 10.79.0.12 }', 'nodes[0].roles'],
  ['provider unknown', 'provider: cloud', 'provider'],
  ['nfs version 5', 'nfs: { version: 5 }', 'nfs.version'],
  ['relative state path', 'paths: { state: var/lib/x }', 'paths.state'],
  ['lab name too long', 'name: averyveryverylongname', 'name'],
  ['unknown field', 'colour: blue', 'colour'],
  ['ssh port out of range', 'ssh: { port: 70000 }', 'ssh.port'],
  ['host key not a fingerprint', 'ssh: { hostKey: abc }', 'ssh.hostKey'],
  ['instance start not a number', 'instanceAddressStart: first', 'instanceAddressStart'],
];

/** [what, argv (FILE: a scenario that is fine), what the message must say] */
const commandLines: [string, string[], RegExp][] = [
  ['unknown command', ['launch'], /unknown command 'launch'/],
  ['unknown option of run', ['run', 'FILE', '--fast'], /unknown option '--fast'/],
  ['option that needs a value', ['run', 'FILE', '--results-dir'], /option '--results-dir <dir>' argument missing/],
  ['run of a missing file', ['run', 'nope.yaml'], /nope\.yaml: cannot read \(no such file\)/],
  ['up of a missing topology', ['up', 'nope.lab.yaml'], /nope\.lab\.yaml: cannot read/],
  ['compare with a negative tolerance', ['compare', 'RESULTS', 'RESULTS', '--tolerance', '-5'], /--tolerance: expected a percentage >= 0/],
  ['compare with a seed that is no number', ['compare', 'RESULTS', 'RESULTS', '--seed', 'x'], /--seed: expected a whole number/],
  ['compare with one run', ['compare', 'RESULTS'], /missing required argument 'current'/],
  ['too many arguments', ['run', 'FILE', 'FILE'], /too many arguments/],
];

/** [what, results.json text, what the message must say] */
const resultsFiles: [string, string, RegExp][] = [
  ['not JSON', 'hello', /results\.json:1:1 \(document\): not a migralab results\.json: invalid JSON/],
  ['JSON cut off', '{"schema": "migralab/results",\n "version": 1,\n "iterations": [1,', /results\.json:\d+:\d+ \(document\): not a migralab results\.json: invalid JSON/],
  ['another kind of file', '{"name": "x", "version": "1.0.0"}', /results\.json:1:1 schema: not a migralab results\.json/],
  ['wrong schema', '{"schema": "other/results"}', /results\.json:1:12 schema: not a migralab results\.json/],
  ['a bad field deep inside', 'BADFIELD', /results\.json:\d+:\d+ iterations\[0\]\.ping\.lost: not a migralab results\.json: .*expected number/],
];

let stderr = '';
async function refused(argv: string[]) {
  const r = await runMain(argv);
  stderr = r.stderr;
  return r.code;
}

function nothingStarted() {
  expect(existsSync(stateDir())).toBe(false);
  expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(`mlab-${LAB}-`);
}

describe('malformed input is refused with exit 2, where it is written, and nothing starts', () => {
  let scenarioFile: string;
  let resultsDir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mlbad-'));
    writeFileSync(goodTopology(), topology());
    scenarioFile = join(dir, 'fine.yaml');
    writeFileSync(scenarioFile, `name: fine\ntopology: ${goodTopology()}\n`);
    // a real results.json to break one field of
    resultsDir = join(dir, 'results');
    mkdirSync(resultsDir);
    const { makeResults } = await import('../results/fixtures.ts');
    writeFileSync(join(resultsDir, 'results.json'), JSON.stringify(makeResults({ shared: [{ durationMs: 600, lost: 1 }] }), null, 2));
  });
  afterAll(async () => {
    // a case that was wrongly accepted raised the lab: take it down before its files go
    if (existsSync(stateDir())) await refused(['down', goodTopology()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('has at least 60 cases', () => {
    expect(scenarios.length + topologies.length + commandLines.length + resultsFiles.length).toBeGreaterThanOrEqual(60);
  });

  it.each(scenarios)('scenario: %s', async (_what, lines, field) => {
    const file = join(dir, 'bad.yaml');
    const body = lines.startsWith('!') ? '' : `${lines}\n`;
    const name = lines === '!name' ? '' : 'name: bad\n';
    writeFileSync(file, `${name}topology: ${goodTopology()}\n${body}`);
    expect(await refused(['run', file]), stderr).toBe(2);
    expect(stderr).toMatch(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:\\d+ `));
    if (field) expect(stderr).toContain(` ${field}: `);
    nothingStarted();
  });

  it.each(topologies)('topology: %s', async (_what, lines, field) => {
    const file = join(dir, 'bad.lab.yaml');
    const key = lines.split(':')[0]!;
    const kept = topology()
      .split('\n')
      .filter((l) => !(l.startsWith(`${key}:`) || (key === 'nodes' && l.startsWith('  - '))));
    writeFileSync(file, [...kept, lines].join('\n') + '\n');
    for (const argv of [['up', file], ['run', scenarioFile, '--topology', file]]) {
      expect(await refused(argv), stderr).toBe(2);
      expect(stderr).toMatch(new RegExp(`bad\\.lab\\.yaml:\\d+:\\d+ ${field.replace(/[.[\]]/g, '\\$&')}: `));
    }
    nothingStarted();
  });

  it.each(commandLines)('command line: %s', async (_what, argv, message) => {
    const args = argv.map((a) => (a === 'FILE' ? scenarioFile : a === 'RESULTS' ? resultsDir : a));
    expect(await refused(args), stderr).toBe(2);
    expect(stderr).toMatch(message);
    nothingStarted();
  });

  it.each(resultsFiles)('results file: %s', async (_what, text, message) => {
    const d = join(dir, 'badresults');
    mkdirSync(d, { recursive: true });
    let body = text;
    if (text === 'BADFIELD') {
      const { makeResults } = await import('../results/fixtures.ts');
      const r = JSON.parse(JSON.stringify(makeResults({ shared: [{ durationMs: 600, lost: 1 }] })));
      r.iterations[0].ping.lost = 'many';
      body = JSON.stringify(r, null, 2);
    }
    writeFileSync(join(d, 'results.json'), body);
    for (const argv of [['report', d, '--output', join(dir, 'r.html')], ['compare', resultsDir, d]]) {
      expect(await refused(argv), stderr).toBe(2);
      expect(stderr).toMatch(message);
    }
    expect(existsSync(join(dir, 'r.html'))).toBe(false);
    nothingStarted();
  });
});
