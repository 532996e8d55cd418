import type { Strategy } from '../config/scenario.ts';
import type { Environment } from '../provision/environment.ts';
import { describe, ratio, type Description } from '../measure/stats.ts';

export const RESULTS_SCHEMA = 'migralab/results';
export const RESULTS_VERSION = 1;

export interface IterationResult {
  index: number;
  strategy: Strategy;
  repetition: number;
  source: string;
  destination: string;
  ok: boolean;
  error?: string;
  /** Where the guest ran after this iteration, and its QMP status. */
  guestOn?: { node: string; status: string };
  startedAt?: string;
  durationMs: number | null;
  prepareMs: number | null;
  mirrorMs: number | null;
  qemu: {
    totalTimeMs: number | null;
    downtimeMs: number | null;
    setupTimeMs: number | null;
    ramBytes: number | null;
    diskBytes: number | null;
  };
  ping: {
    intervalMs: number;
    sent: number | null;
    received: number | null;
    lost: number | null;
    maxGapMs: number | null;
    maxGapStart: string | null;
    maxGapEnd: string | null;
    maxRttMs: number | null;
    /** The interval ping really kept (median gap between replies): the kernel rounds -i of 10 ms and up to its ticks. */
    medianGapMs: number | null;
  };
  /** The data disk as QEMU itself reports it (query-named-block-nodes) on each side. */
  disk?: { source?: DiskLocation; destination: DiskLocation };
  verified: {
    onDestination: boolean;
    sourceGone: boolean;
    diskIntact: boolean;
    answersPing: boolean;
  };
  /** Why a figure is missing, or anything odd seen while measuring. */
  notes: string[];
}

export interface DiskLocation {
  /** QEMU protocol driver: `file` (local or kernel NFS mount) or `nfs` (QEMU's own NFS client). */
  driver: string;
  filename: string;
  /** The file is the one on the controller's NFS export. */
  onExport: boolean;
}

export interface StrategySummary {
  strategy: Strategy;
  iterations: number;
  failed: number;
  durationMs: Description;
  downtimeMs: Description;
  maxGapMs: Description;
  lost: Description;
}

export interface Results {
  schema: typeof RESULTS_SCHEMA;
  version: typeof RESULTS_VERSION;
  scenario: { file: string; name: string; asRun: unknown };
  topologyFile: string;
  lab: string;
  environment: Environment;
  startedAt: string;
  finishedAt?: string;
  interrupted?: boolean;
  iterations: IterationResult[];
  summary?: { strategies: StrategySummary[]; blockToSharedRatio: { durationMs?: number; downtimeMs?: number; maxGapMs?: number } };
}

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
