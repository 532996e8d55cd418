import { readFileSync } from 'node:fs';
import { scenarioSchema, type Strategy } from '../../../lab/config/scenario.ts';
import { RESULTS_SCHEMA, RESULTS_VERSION, resultsSchema, type IterationResult, type Results } from '../../../lab/results/schema.ts';
import { summarize } from '../../../lab/results/cells.ts';

/** The figures of one hand-made iteration; a figure left out was not measured (null). */
export interface IterationSpec {
  durationMs?: number | null;
  downtimeMs?: number | null;
  maxGapMs?: number | null;
  lost?: number | null;
  /** default true */
  ok?: boolean;
}

export type ResultsSpec = Partial<Record<Strategy, IterationSpec[]>>;

export const baseEnvironment: Results['environment'] = {
  accelerator: 'kvm',
  acceleratorReason: '/dev/kvm is usable',
  qemuVersion: '8.2.2',
  kernel: '6.8.0-45-generic',
  cpuModel: 'Intel(R) Xeon(R) CPU @ 2.20GHz',
  cpus: 2,
  nfsServer: 'ganesha',
  nfsClient: 'kernel',
  nfsClientReason: 'nfs module loaded',
  node: 'v20.19.0',
  migralab: '0.1.0',
};

export interface ResultsOptions {
  /** Scenario name (default `fixture`). */
  name?: string;
  /** The scenario as run; default: a parsed scenario whose strategies are the spec's keys in order. */
  asRun?: unknown;
  startedAt?: string;
}

/**
 * A valid results.json object (checked with resultsSchema) from per-strategy lists of
 * iteration figures. Iterations interleave like a real run: repetition 1 of every
 * strategy, then repetition 2, …
 */
export function makeResults(spec: ResultsSpec, envOverrides: Partial<Results['environment']> = {}, opts: ResultsOptions = {}): Results {
  const order = Object.keys(spec) as Strategy[];
  const name = opts.name ?? 'fixture';
  const asRun = opts.asRun ?? scenarioSchema.parse({ name, strategies: order });
  const rounds = Math.max(0, ...order.map((s) => spec[s]!.length));
  const iterations: IterationResult[] = [];
  for (let r = 0; r < rounds; r++)
    for (const strategy of order) {
      const it = spec[strategy]![r];
      if (it) iterations.push(iteration(iterations.length, strategy, r + 1, it));
    }
  return resultsSchema.parse({
    schema: RESULTS_SCHEMA,
    version: RESULTS_VERSION,
    scenario: { file: `/scenarios/${name}.yaml`, name, asRun },
    topologyFile: '/scenarios/topologies/two-node.lab.yaml',
    lab: 'fixture-lab',
    environment: { ...baseEnvironment, ...envOverrides },
    startedAt: opts.startedAt ?? '2025-01-01T00:00:00.000Z',
    finishedAt: '2025-01-01T00:10:00.000Z',
    iterations,
    summary: summarize(iterations, order),
  });
}

function iteration(index: number, strategy: Strategy, repetition: number, s: IterationSpec): IterationResult {
  const ok = s.ok ?? true;
  const [source, destination] = index % 2 === 0 ? ['node1', 'node2'] : ['node2', 'node1'];
  return {
    index,
    strategy,
    repetition,
    source,
    destination,
    ok,
    ...(ok ? {} : { error: 'migration failed (fixture)' }),
    durationMs: s.durationMs ?? null,
    prepareMs: null,
    mirrorMs: null,
    qemu: { totalTimeMs: s.durationMs ?? null, downtimeMs: s.downtimeMs ?? null, setupTimeMs: null, ramBytes: null, diskBytes: null },
    ping: {
      intervalMs: 10,
      sent: null,
      received: null,
      lost: s.lost ?? null,
      maxGapMs: s.maxGapMs ?? null,
      maxGapStart: null,
      maxGapEnd: null,
      maxRttMs: null,
      medianGapMs: null,
    },
    verified: { onDestination: ok, sourceGone: ok, diskIntact: ok, answersPing: ok },
    notes: [],
  };
}

/**
 * `n` iterations whose figures are `base` scaled by `factor` with a small deterministic
 * spread (±4%), balanced so the median is exactly `base × factor` for an odd `n` and for 8 or 10.
 */
export function series(n: number, base: Required<Omit<IterationSpec, 'ok'>>, factor = 1): IterationSpec[] {
  const spread = [1.0, 0.97, 1.03, 0.99, 1.01, 0.98, 1.02, 1.0, 0.96, 1.04];
  return Array.from({ length: n }, (_, i) => {
    const k = factor * spread[i % spread.length]!;
    const f = (v: number | null) => (v === null ? null : Math.round(v * k * 10) / 10);
    return { durationMs: f(base.durationMs), downtimeMs: f(base.downtimeMs), maxGapMs: f(base.maxGapMs), lost: base.lost === null ? null : Math.round(base.lost * k) };
  });
}

/** A real matrix run: 2 link cells (link.rate=unlimited, 200Mbit) x block/shared, one repetition each, with every per-iteration view. */
export const matrixFixture = 'test/fixtures/results/matrix.results.json';

export function loadMatrix(): Results {
  return resultsSchema.parse(JSON.parse(readFileSync(matrixFixture, 'utf8')));
}
