import { z } from 'zod';
import { strategies, type Strategy } from '../config/scenario.ts';
import { describe, ratio } from '../measure/stats.ts';

export const RESULTS_SCHEMA = 'migralab/results';
export const RESULTS_VERSION = 1;

const ms = z.number().nullable();
const bytes = z.number().int().nonnegative().nullable();

export const environmentSchema = z.object({
  accelerator: z.enum(['kvm', 'tcg']),
  acceleratorReason: z.string(),
  qemuVersion: z.string(),
  kernel: z.string(),
  cpuModel: z.string(),
  cpus: z.number().int(),
  nfsServer: z.literal('ganesha'),
  nfsClient: z.enum(['kernel', 'qemu']),
  nfsClientReason: z.string(),
  node: z.string(),
  migralab: z.string(),
});

export const diskLocationSchema = z.object({
  /** QEMU protocol driver: `file` (local or kernel NFS mount) or `nfs` (QEMU's own NFS client). */
  driver: z.string(),
  filename: z.string(),
  /** The file is the one on the controller's NFS export. */
  onExport: z.boolean(),
});

const sampleSchema = z.object({
  t: z.number(),
  phase: z.enum(['mirror', 'ram', 'postcopy', 'switchover']),
  diskDone: z.number().nullable(),
  diskRemaining: z.number().nullable(),
  ramTransferred: z.number().nullable(),
  ramRemaining: z.number().nullable(),
  dirtyBytesPerSec: z.number().nullable(),
  mbps: z.number().nullable(),
  iterations: z.number().nullable(),
});

export const iterationSchema = z.object({
  index: z.number().int().nonnegative(),
  strategy: z.enum(strategies),
  /** The matrix cell: its label, the label without the strategy (`group`), the axis values as written. */
  cell: z.object({ label: z.string(), group: z.string(), params: z.record(z.string(), z.unknown()) }).optional(),
  repetition: z.number().int().positive(),
  source: z.string(),
  destination: z.string(),
  ok: z.boolean(),
  error: z.string().optional(),
  /** Where the guest ran after this iteration, and its QMP status. */
  guestOn: z.object({ node: z.string(), status: z.string() }).optional(),
  startedAt: z.string().optional(),
  /** Harness wall time, first migration command to QEMU's `completed` event. */
  durationMs: ms,
  /** Destination QEMU start + incoming/NBD setup, before the request. */
  prepareMs: ms,
  /** Block only: until every disk mirror was ready. */
  mirrorMs: ms,
  qemu: z.object({
    totalTimeMs: ms,
    downtimeMs: ms,
    setupTimeMs: ms,
    ramBytes: bytes,
    diskBytes: bytes,
    /** Largest dirty-page rate QEMU reported during the RAM phase, bytes/s. */
    dirtyBytesPerSecMax: z.number().nullable().optional(),
  }),
  ping: z.object({
    intervalMs: z.number(),
    sent: z.number().int().nullable(),
    received: z.number().int().nullable(),
    lost: z.number().int().nullable(),
    /** The interruption: largest gap between consecutive replies. */
    maxGapMs: ms,
    maxGapStart: z.string().nullable(),
    maxGapEnd: z.string().nullable(),
    maxRttMs: ms,
    /** The interval ping really kept (median gap between replies): the kernel rounds -i of 10 ms and up to its ticks. */
    medianGapMs: ms,
    /** The three largest gaps, largest first, in ms after timeline.t0 (a block migration can have two interruptions). */
    gaps: z.array(z.object({ startMs: z.number(), endMs: z.number(), ms: z.number() })).optional(),
  }),
  /**
   * The iteration on one clock: t0 is the epoch ms of the migration request; every
   * offset below is milliseconds after it (negative: before).
   */
  timeline: z
    .object({
      t0: z.number(),
      /** [offsetMs, rttMs, icmp_seq] of every ping reply, in arrival order. */
      ping: z.array(z.tuple([z.number(), z.number().nullable(), z.number().int()])),
      /** Phase boundaries the harness saw. */
      marks: z.object({
        mirrorReady: z.number().nullable(),
        ramStart: z.number().nullable().optional(),
        postcopyStart: z.number().nullable().optional(),
        completed: z.number().nullable(),
        destRunning: z.number().nullable().optional(),
        cleanedUp: z.number().nullable().optional(),
      }),
      /** QMP samples every 50 ms: disk and RAM remaining, dirty rate, throughput, RAM pass count. */
      samples: z.array(sampleSchema).optional(),
    })
    .optional(),
  /** Phase durations (lab/measure/phases.ts). */
  phases: z
    .object({
      setupMs: ms,
      mirrorMs: ms,
      precopyMs: ms,
      ramIterations: z.number().nullable(),
      postcopyMs: ms,
      switchoverMs: ms,
      /** From the source's `completed` until the destination ran: not in QEMU's downtime, but the guest is not running. */
      resumeMs: ms,
      cleanupMs: ms,
    })
    .optional(),
  /** Link conditions on the migration path during this iteration, and the bytes that crossed it. */
  link: z
    .object({
      rateBitsPerSec: z.number().nullable(),
      lossPct: z.number(),
      delayMs: z.number(),
      /** Bytes the source node sent on its uplink during the migration (interface counters). */
      wireBytes: z.number().nullable(),
      /** wireBytes / (duration x rate), when the link is capped. */
      efficiency: z.number().nullable(),
    })
    .optional(),
  /** Migration tunables in effect on the source (query-migrate-parameters/-capabilities), and the mirror's copy mode. */
  tunables: z
    .object({
      maxBandwidthBytesPerSec: z.number().nullable(),
      downtimeLimitMs: z.number().nullable(),
      multifdChannels: z.number().nullable(),
      autoConverge: z.boolean(),
      postcopy: z.boolean(),
      mirrorCopyMode: z.enum(['background', 'write-blocking']),
    })
    .optional(),
  /** The guest's own view and its workload. */
  guest: z
    .object({
      /** Time the guest's clock lost across the migration (offset to the host clock, after minus before). */
      clockLossMs: ms,
      clockUncertaintyMs: ms,
      /** Largest gap between rounds of the in-guest probe loop. */
      probeMaxGapMs: ms,
      probePeriodMs: ms,
      workload: z
        .object({
          memory: z.object({ bytesDirtied: z.number(), seconds: z.number(), rateMiBs: z.number() }).optional(),
          disk: z.object({ bytesWritten: z.number(), seconds: z.number(), rateMiBs: z.number() }).optional(),
        })
        .optional(),
    })
    .optional(),
  /** The harness's own cost: CPU of this process from request to completion, and of ping over its window. */
  harness: z.object({ cpuMs: ms, pingCpuMs: ms, windowMs: ms }).optional(),
  /** Contradictions between the network, hypervisor and guest views (lab/measure/crosscheck.ts); empty when they agree. */
  crossCheck: z.array(z.string()).optional(),
  /** The data disk as QEMU itself reports it (query-named-block-nodes) on each side. */
  disk: z.object({ source: diskLocationSchema.optional(), destination: diskLocationSchema }).optional(),
  verified: z.object({
    onDestination: z.boolean(),
    sourceGone: z.boolean(),
    diskIntact: z.boolean(),
    answersPing: z.boolean(),
  }),
  /** Why a figure is missing, or anything odd seen while measuring. */
  notes: z.array(z.string()),
});

const descriptionSchema = z.object({ n: z.number().int(), median: z.number().optional(), min: z.number().optional(), max: z.number().optional() });

export const strategySummarySchema = z.object({
  strategy: z.enum(strategies),
  /** The matrix cell (equal to the strategy when the scenario has no axes) and its label without the strategy. */
  cell: z.string().optional(),
  group: z.string().optional(),
  iterations: z.number().int(),
  failed: z.number().int(),
  durationMs: descriptionSchema,
  downtimeMs: descriptionSchema,
  maxGapMs: descriptionSchema,
  lost: descriptionSchema,
});

const ratiosSchema = z.object({ durationMs: z.number().optional(), downtimeMs: z.number().optional(), maxGapMs: z.number().optional() });

export const resultsSchema = z.object({
  schema: z.literal(RESULTS_SCHEMA),
  version: z.literal(RESULTS_VERSION),
  scenario: z.object({ file: z.string(), name: z.string(), asRun: z.unknown() }),
  topologyFile: z.string(),
  lab: z.string(),
  environment: environmentSchema,
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  interrupted: z.boolean().optional(),
  iterations: z.array(iterationSchema),
  summary: z
    .object({
      strategies: z.array(strategySummarySchema),
      /** Ratios of the medians, block / shared, for the first (or only) group of cells. */
      blockToSharedRatio: ratiosSchema,
      /** The same per group of cells that differ only by strategy (matrix scenarios). */
      ratiosByGroup: z.array(z.object({ group: z.string() }).extend(ratiosSchema.shape)).optional(),
    })
    .optional(),
});

export type DiskLocation = z.infer<typeof diskLocationSchema>;
export type IterationResult = z.infer<typeof iterationSchema>;
export type StrategySummary = z.infer<typeof strategySummarySchema>;
export type Results = z.infer<typeof resultsSchema>;

/** results/<UTC time>-<scenario name>, relative to the working directory. */
export function defaultResultsDir(scenarioName: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `results/${stamp}-${scenarioName}`;
}

/** Per cell (per strategy when there are no axes): median/min/max over successful iterations, and block/shared ratios per group. */
export function summarize(iterations: IterationResult[], strategies: readonly Strategy[]): NonNullable<Results['summary']> {
  const cellKey = (i: IterationResult) => i.cell?.label ?? i.strategy;
  const seen = new Map<string, IterationResult>();
  for (const i of iterations) if (!seen.has(cellKey(i))) seen.set(cellKey(i), i);
  // strategies that were planned but never ran still get a (empty) row, as before
  for (const strategy of strategies) if (![...seen.values()].some((i) => i.strategy === strategy)) seen.set(strategy, { strategy } as IterationResult);
  const per = [...seen.entries()].map(([key, first]): StrategySummary => {
    const its = iterations.filter((i) => cellKey(i) === key);
    const ok = its.filter((i) => i.ok);
    return {
      strategy: first.strategy,
      ...(first.cell ? { cell: first.cell.label, group: first.cell.group } : {}),
      iterations: its.length,
      failed: its.length - ok.length,
      durationMs: describe(ok.map((i) => i.durationMs)),
      downtimeMs: describe(ok.map((i) => i.qemu.downtimeMs)),
      maxGapMs: describe(ok.map((i) => i.ping.maxGapMs)),
      lost: describe(ok.map((i) => i.ping.lost)),
    };
  });
  const groupsSeen = [...new Set(per.map((p) => p.group ?? ''))];
  const ratiosByGroup = groupsSeen.map((group) => {
    const b = per.find((p) => p.strategy === 'block' && (p.group ?? '') === group);
    const s = per.find((p) => p.strategy === 'shared' && (p.group ?? '') === group);
    return {
      group,
      durationMs: ratio(b?.durationMs.median, s?.durationMs.median),
      downtimeMs: ratio(b?.downtimeMs.median, s?.downtimeMs.median),
      maxGapMs: ratio(b?.maxGapMs.median, s?.maxGapMs.median),
    };
  });
  const { group: _first, ...blockToSharedRatio } = ratiosByGroup[0] ?? { group: '' };
  return { strategies: per, blockToSharedRatio, ...(groupsSeen.length > 1 ? { ratiosByGroup } : {}) };
}
