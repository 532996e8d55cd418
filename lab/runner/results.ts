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

export const iterationSchema = z.object({
  index: z.number().int().nonnegative(),
  strategy: z.enum(strategies),
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
      marks: z.object({ mirrorReady: z.number().nullable(), completed: z.number().nullable() }),
    })
    .optional(),
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
  iterations: z.number().int(),
  failed: z.number().int(),
  durationMs: descriptionSchema,
  downtimeMs: descriptionSchema,
  maxGapMs: descriptionSchema,
  lost: descriptionSchema,
});

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
      blockToSharedRatio: z.object({ durationMs: z.number().optional(), downtimeMs: z.number().optional(), maxGapMs: z.number().optional() }),
    })
    .optional(),
});

export type DiskLocation = z.infer<typeof diskLocationSchema>;
export type IterationResult = z.infer<typeof iterationSchema>;
export type StrategySummary = z.infer<typeof strategySummarySchema>;
export type Results = z.infer<typeof resultsSchema>;

export function summarize(iterations: IterationResult[], strategies: readonly Strategy[]): NonNullable<Results['summary']> {
  const per = strategies.map((strategy): StrategySummary => {
    const its = iterations.filter((i) => i.strategy === strategy);
    const ok = its.filter((i) => i.ok);
    return {
      strategy,
      iterations: its.length,
      failed: its.length - ok.length,
      durationMs: describe(ok.map((i) => i.durationMs)),
      downtimeMs: describe(ok.map((i) => i.qemu.downtimeMs)),
      maxGapMs: describe(ok.map((i) => i.ping.maxGapMs)),
      lost: describe(ok.map((i) => i.ping.lost)),
    };
  });
  const b = per.find((p) => p.strategy === 'block');
  const s = per.find((p) => p.strategy === 'shared');
  return {
    strategies: per,
    blockToSharedRatio: {
      durationMs: ratio(b?.durationMs.median, s?.durationMs.median),
      downtimeMs: ratio(b?.downtimeMs.median, s?.downtimeMs.median),
      maxGapMs: ratio(b?.maxGapMs.median, s?.maxGapMs.median),
    },
  };
}
