import { z } from 'zod';
import { scenarioSchema, strategies, driverNames, type Scenario, type Strategy } from '../config/scenario.ts';

export const RESULTS_SCHEMA = 'migralab/results';
export const RESULTS_VERSION = 1;

const ms = z.number().nullable();
const bytes = z.number().int().nonnegative().nullable();

export const knownIssueSchema = z.object({ id: z.string(), text: z.string(), reference: z.string() });

export const environmentSchema = z.object({
  /** Which provider raised the lab: `local` (namespaces on this host) or `ssh` (hosts over ssh2). */
  provider: z.enum(['local', 'ssh']).optional(),
  accelerator: z.enum(['kvm', 'tcg']),
  acceleratorReason: z.string(),
  /** The system QEMU's version (each iteration records the build it ran: hypervisor.*). */
  qemuVersion: z.string(),
  /** Defects of this QEMU under this accelerator that affect what is measured, with their upstream reference. */
  knownIssues: z.array(knownIssueSchema).optional(),
  /** Every QEMU build the run used (hypervisor.qemu). */
  builds: z.array(z.object({ id: z.string(), binary: z.string(), version: z.string(), versionText: z.string() })).optional(),
  /** libvirtd's version, when the libvirt driver ran. */
  libvirtVersion: z.string().nullable().optional(),
  kernel: z.string(),
  cpuModel: z.string(),
  cpus: z.number().int(),
  /** user-space ganesha (this kind of machine), or the kernel's nfsd (real hosts that have it). */
  nfsServer: z.enum(['ganesha', 'kernel']),
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
  /** Which migration driver moved the guest (results before drivers existed: qemu). */
  driver: z.enum(driverNames).optional(),
  /** The QEMU build both sides ran: its name in the scenario, binary, version, firmware directories. */
  hypervisor: z.object({ build: z.string(), binary: z.string(), version: z.string(), firmwareDirs: z.array(z.string()) }).optional(),
  /** The matrix cell: its label, the label without the strategy (`group`), the axis values as written. */
  cell: z.object({ label: z.string(), group: z.string(), params: z.record(z.string(), z.unknown()) }).optional(),
  /** placement { drain: NODE }: the drain (results.drains[].id) and the guest this migration moved. */
  drain: z.object({ id: z.number().int(), guest: z.string() }).optional(),
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
    /** Destination RESUME minus source STOP, from the QMP events' own timestamps (µs resolution). */
    eventDowntimeMs: ms.optional(),
  }),
  /** A failed migration: what kind of failure, how long after the request it was noticed. */
  failure: z
    .object({
      kind: z.enum(['destination-died', 'destination-hung', 'link-lost', 'storage-lost', 'disk-full', 'timeout', 'interrupted', 'guest-crashed', 'refused', 'unknown']),
      detectedAfterMs: ms,
      message: z.string(),
    })
    .optional(),
  /** A fault the scenario injected into this iteration: its kind, when, ms after the request. */
  fault: z.object({ kind: z.string(), during: z.string(), injectedAtMs: ms, detail: z.string().optional() }).optional(),
  /**
   * Whether the iteration ended as its cell expects. Faults: `completes`, or `stays-on-source`
   * intact. `known-issue`: a hypervisor with a known defect run on purpose
   * (hypervisor.allowKnownIssues): it completes, or fails as that defect (see knownIssue).
   */
  expected: z.object({ outcome: z.enum(['completes', 'stays-on-source', 'known-issue']), met: z.boolean() }).optional(),
  /** The known defect this iteration's hypervisor has, and whether this iteration reproduced it (with what was seen). */
  knownIssue: z.object({ id: z.string(), reference: z.string(), reproduced: z.boolean(), evidence: z.string().nullable() }).optional(),
  /** libvirt's own account of the migration job (virsh domjobinfo --completed), when libvirt drove it. */
  libvirt: z
    .object({
      timeElapsedMs: ms,
      downtimeMs: ms,
      dataProcessedBytes: ms,
      memoryProcessedBytes: ms,
      diskProcessedBytes: ms,
      iterations: ms,
      virshMs: ms,
      raw: z.record(z.string(), z.string()),
    })
    .optional(),
  /** nova's account of the migration, when nova drove it (completed or not): lab/migrate/types.ts NovaMigrationRecord. */
  nova: z
    .object({
      microversion: z.string(),
      serverId: z.string(),
      migrationId: z.number().int().nullable(),
      blockMigration: z.boolean(),
      diskOverCommit: z.boolean().nullable(),
      /** The os-migrateLive request to the server ACTIVE on the destination (what Rally measures); null: it did not get there. */
      apiToActiveMs: ms,
      requestId: z.string().nullable(),
      phases: z.array(z.object({ status: z.string(), atMs: z.number() })),
      phaseSpans: z.array(z.object({ from: z.string(), to: z.string(), ms: z.number() })),
      status: z.string().nullable(),
      fault: z.string().nullable(),
      location: z.object({ nova: z.string().nullable(), hypervisor: z.record(z.string(), z.string()) }).nullable(),
      novaTimes: z.object({ createdAt: z.string().nullable(), updatedAt: z.string().nullable() }).optional(),
    })
    .optional(),
  /** verify.ramDump: both sides' guest RAM compared byte for byte while paused. */
  ramDump: z.object({ bytes: z.number(), pagesDiffering: z.number().int(), firstPages: z.array(z.number().int()), tookMs: z.number() }).optional(),
  /** The memory writer's check of its working set after the migration (where the guest ran then); null: not checked. */
  ram: z
    .object({
      pagesChecked: z.number().int(),
      pagesBad: z.number().int(),
      firstBad: z.object({ index: z.number().int(), expected: z.number().int(), found: z.number().int(), kind: z.enum(['stale', 'corrupt']) }).nullable(),
    })
    .nullable()
    .optional(),
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
      /** The migration stream (and a block migration's NBD export) over TLS: QEMU's tls-creds as read back from the source. Absent in results of older versions. */
      tls: z.boolean().optional(),
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
    /** No guest memory write was lost (the writer's page check, and with verify.ramDump the byte comparison); null: verify.ram was off. */
    ramIntact: z.boolean().nullable().optional(),
    answersPing: z.boolean(),
  }),
  /** Why a figure is missing, or anything odd seen while measuring. */
  notes: z.array(z.string()),
  /**
   * True when this iteration's guest was prepared (probe MiB, RAM writer, pause probe, clock)
   * while the previous iteration, on another guest, ran its last checks; its own window opened
   * only after that one ended. Absent: prepared alone (run --no-overlap, the first iteration,
   * a change of link, a fault, a replaced guest), or results written before.
   */
  overlapped: z.boolean().optional(),
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

/**
 * A recorded `scenario.asRun` that the scenario schema does not accept (results written
 * by hand, or by a migralab whose scenario format differed), kept as written:
 * `JSON.stringify` writes it back unchanged. It is not a scenario, so nothing reads
 * settings from it; only the strategies it lists, when they are valid ones, order the
 * cells. (A structured clone drops the class: clone results through JSON.)
 */
export class UnreadScenario {
  constructor(readonly recorded: unknown) {}

  get strategies(): Strategy[] | undefined {
    const r = this.recorded;
    if (typeof r !== 'object' || r === null || !('strategies' in r) || !Array.isArray(r.strategies)) return undefined;
    return r.strategies.filter((s): s is Strategy => (strategies as readonly unknown[]).includes(s));
  }

  toJSON(): unknown {
    return this.recorded;
  }
}

/**
 * `scenario.asRun`, read once into the scenario type. The runner records the parsed
 * scenario, and the scenario schema's transforms are idempotent on their own output, so
 * what the runner wrote reads back equal to what it ran (an older file gains the
 * defaults of settings added since). A value the schema refuses does not make the file
 * unreadable: it stays an UnreadScenario. (As a transform its JSON Schema is `{}`, as
 * before: a results.json may hold anything there.)
 */
const asRunSchema = z.unknown().transform((v): Scenario | UnreadScenario => {
  const parsed = scenarioSchema.safeParse(v);
  return parsed.success ? parsed.data : new UnreadScenario(v);
});

/**
 * One host drain: K guests left one node, N migrations at a time. The migrations' times
 * are milliseconds from the first one's request; each migration's own figures and proofs
 * are its iteration's.
 */
export const drainSchema = z.object({
  id: z.number().int(),
  strategy: z.enum(strategies),
  driver: z.string(),
  /** The cell its iterations carry (with concurrency=N). */
  cell: z.string(),
  repetition: z.number().int(),
  from: z.string(),
  guests: z.number().int(),
  concurrency: z.number().int(),
  /** From the first migration's request to the last one's end: the drain time. */
  totalMs: z.number().nullable(),
  /** From the start of the guests' preparation (probe, workload, ping; all at once) to the first migration's request. */
  prepareMs: z.number().nullable(),
  /** The whole drain, with the preparation and every migration's proofs. */
  wallMs: z.number(),
  /** Bytes the drained node sent over the drain (every migration's stream together; null where the node's counters cannot be read). */
  wireBytes: z.number().nullable(),
  /** The most migrations that ran at the same moment (from the timeline below). */
  maxOverlap: z.number().int(),
  ok: z.boolean(),
  migrations: z.array(
    z.object({
      iteration: z.number().int(),
      guest: z.string(),
      destination: z.string(),
      /** The driver's migrate call: from its request to its return (null: it never started). */
      startMs: z.number().nullable(),
      endMs: z.number().nullable(),
      ok: z.boolean(),
      maxGapMs: z.number().nullable(),
    }),
  ),
});

/** Drain time per strategy, driver and concurrency, over the repetitions. */
export const drainSummarySchema = z.object({
  strategy: z.enum(strategies),
  driver: z.string(),
  guests: z.number().int(),
  concurrency: z.number().int(),
  drains: z.number().int(),
  failed: z.number().int(),
  totalMs: descriptionSchema,
  wireBytes: descriptionSchema,
  /** The worst interruption of any guest in the drain, over the drains. */
  worstGapMs: descriptionSchema,
});

const ratiosSchema = z.object({ durationMs: z.number().optional(), downtimeMs: z.number().optional(), maxGapMs: z.number().optional() });

export const resultsSchema = z.object({
  schema: z.literal(RESULTS_SCHEMA),
  version: z.literal(RESULTS_VERSION),
  scenario: z.object({ file: z.string(), name: z.string(), asRun: asRunSchema }),
  topologyFile: z.string(),
  lab: z.string(),
  environment: environmentSchema,
  startedAt: z.string(),
  finishedAt: z.string().optional(),
  interrupted: z.boolean().optional(),
  /**
   * What the run cost its host, to size a CI runner: the harness's own CPU time (user +
   * system, the whole run), and every QEMU's peak resident memory (VmHWM when it was stopped).
   */
  sizing: z
    .object({
      harnessCpuMs: z.number(),
      wallMs: z.number(),
      qemu: z.array(z.object({ guest: z.string(), node: z.string(), peakRssBytes: z.number() })),
      /** The largest of those peaks per guest. */
      peakRssBytesByGuest: z.record(z.string(), z.number()),
      hostMemAvailableBytes: z.number().nullable(),
      /**
       * How each guest was started (drains: every drain's guests), in boot order: `snapshot`,
       * restored from a booted snapshot (lab/migrate/qemu/snapshot.ts), or `cold`, booted from
       * its kernel; `ms` from the start to a guest that answers with its own identity,
       * `snapshotMadeMs` when that guest waited for the snapshot to be made first, `note` why
       * a guest that should have been restored booted cold. Absent in results written before.
       */
      boot: z
        .array(
          z.object({
            guest: z.string(),
            node: z.string(),
            mode: z.enum(['snapshot', 'cold']),
            ms: z.number(),
            snapshotMadeMs: z.number().nullable(),
            note: z.string().nullable(),
          }),
        )
        .optional(),
    })
    .optional(),
  iterations: z.array(iterationSchema),
  /** placement { drain: NODE }: every drain, in run order. */
  drains: z.array(drainSchema).optional(),
  summary: z
    .object({
      drains: z.array(drainSummarySchema).optional(),
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
export type DrainRecord = z.infer<typeof drainSchema>;
export type DrainSummary = z.infer<typeof drainSummarySchema>;
export type Results = z.infer<typeof resultsSchema>;

/** results/<UTC time>-<scenario name>, relative to the working directory. */
export function defaultResultsDir(scenarioName: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  return `results/${stamp}-${scenarioName}`;
}

/** The scenario the run ran, typed; undefined when results.json holds one the scenario schema does not accept. */
export function scenarioOf(results: Results): Scenario | undefined {
  const s = results.scenario.asRun;
  return s instanceof UnreadScenario ? undefined : s;
}

/** `scenario.asRun` as results.json holds it (the scenario, or the value that did not parse as one). */
export function recordedScenario(results: Results): unknown {
  const s = results.scenario.asRun;
  return s instanceof UnreadScenario ? s.recorded : s;
}
