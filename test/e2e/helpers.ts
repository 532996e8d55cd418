import { execa } from 'execa';
import { beforeAll, afterAll, beforeEach, afterEach } from 'vitest';
import { readFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { Results } from '../../lab/results/schema.ts';
import { loadTopology } from '../../lab/config/topology.ts';
import { planLab, type LabPlan } from '../../lab/provision/plan.ts';

export const testTopologyFile = 'test/fixtures/test.lab.yaml';

export async function testPlan(): Promise<LabPlan> {
  return planLab(await loadTopology(testTopologyFile));
}

/** Runs the real CLI, as a user would. */
export function cli(args: string[], opts: { timeoutMs?: number } = {}) {
  return execa('node', ['scripts/migralab.js', ...args], { reject: false, timeout: opts.timeoutMs ?? 180_000, all: true });
}

/** Inside a lab node: the node's network, mount and UTS namespaces. */
export function onNode(plan: LabPlan, node: string, argv: string[]) {
  const n = plan.nodes.find((x) => x.name === node)!;
  return execa('nsenter', [`--net=/run/netns/${n.netns}`, `--mount=${n.mountNsFile}`, `--uts=${n.utsNsFile}`, '--', ...argv], { reject: false });
}

/** What the lab may leave behind: namespaces named after it, mounts under its state dir, its state dir, processes in its ledger. */
export async function leftovers(plan: LabPlan, pids: number[] = []): Promise<string[]> {
  const out: string[] = [];
  const ns = (await execa('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith(`mlab-${plan.lab}-`));
  if (ns.length) out.push(`namespaces: ${ns.join(' ')}`);
  // Only this lab's mounts: another lab under the same state root (a test of its own, or
  // one a developer left up) is not this test's leftover.
  const mounts = readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .filter((l) => {
      const at = l.split(' ')[1] ?? '';
      return at === plan.labDir || at.startsWith(`${plan.labDir}/`);
    });
  if (mounts.length) out.push(`mounts: ${mounts.join('; ')}`);
  if (existsSync(plan.labDir)) out.push(`directory ${plan.labDir}`);
  if (existsSync(plan.ledgerFile)) out.push(`ledger ${plan.ledgerFile}`);
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!/\) [ZX] /.test(stat)) out.push(`process ${pid} ${stat.split(' ')[1]}`);
    } catch {
      /* gone */
    }
  }
  return out;
}

/**
 * `migralab run <fixture>` from a clean test lab into a fresh results directory; the
 * caller checks the exit code. `cleanup()` takes the lab down and removes the directory.
 */
export async function runFixture(fixture: string, timeoutMs = 280_000) {
  await cli(['down', testTopologyFile]);
  const dir = mkdtempSync(join(tmpdir(), 'mlrun-'));
  const run = await cli(['run', fixture, '--results-dir', dir], { timeoutMs });
  const resultsFile = join(dir, 'results.json');
  const results = existsSync(resultsFile) ? (JSON.parse(readFileSync(resultsFile, 'utf8')) as Results) : undefined;
  return {
    dir,
    run,
    results: results!,
    cleanup: async () => {
      await cli(['down', testTopologyFile]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A scratch results directory for the tests of a describe block, and the lab they raise taken
 * down after them: once for the block, or (each) around every test, the lab also taken down
 * before it so a test never starts on another's lab.
 */
export function labScratch(prefix: string, opts: { topology?: string; each?: boolean } = {}): { readonly dir: string } {
  const topology = opts.topology ?? testTopologyFile;
  const state = { dir: '' };
  const make = async () => {
    if (opts.each) await cli(['down', topology]);
    state.dir = mkdtempSync(join(tmpdir(), prefix));
  };
  const clean = async () => {
    await cli(['down', topology]);
    if (state.dir) rmSync(state.dir, { recursive: true, force: true });
    state.dir = '';
  };
  if (opts.each) {
    beforeEach(make);
    afterEach(clean);
  } else {
    beforeAll(make);
    afterAll(clean);
  }
  return {
    get dir() {
      if (!state.dir) throw new Error('labScratch: the directory exists only inside a test');
      return state.dir;
    },
  };
}
