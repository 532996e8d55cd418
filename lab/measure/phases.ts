import type { MigrationMarks } from '../migrate/types.ts';

export interface Phases {
  /** QEMU's own setup time of the RAM migration. */
  setupMs: number | null;
  /** Block: drive-mirror until every job was ready. */
  mirrorMs: number | null;
  /** RAM pre-copy: from `migrate` until the switchover (or post-copy) began, setup included. */
  precopyMs: number | null;
  /** RAM passes QEMU made (dirty-sync-count). */
  ramIterations: number | null;
  /** Post-copy: from migrate-start-postcopy to completion. */
  postcopyMs: number | null;
  /** The switchover: QEMU's downtime. */
  switchoverMs: number | null;
  /** From the source's completion until the destination reported running. */
  resumeMs: number | null;
  /** After completion: mirrors cancelled, NBD server stopped. */
  cleanupMs: number | null;
}

/**
 * Phase durations from the harness's marks (ms after the request) and QEMU's figures.
 * Pre-copy is what remains of the RAM phase once the downtime is taken out.
 */
export function derivePhases(marks: MigrationMarks, qemu: { setupTimeMs?: number | null; downtimeMs?: number | null; iterations?: number | null }): Phases {
  const d = (a: number | null, b: number | null) => (a !== null && b !== null ? b - a : null);
  const downtime = qemu.downtimeMs ?? null;
  const ramEnd = marks.postcopyStart ?? marks.completed;
  let precopy = d(marks.ramStart, ramEnd);
  if (precopy !== null && marks.postcopyStart === null && downtime !== null) precopy = Math.max(0, precopy - downtime);
  return {
    setupMs: qemu.setupTimeMs ?? null,
    mirrorMs: marks.mirrorReady,
    precopyMs: precopy,
    ramIterations: qemu.iterations ?? null,
    postcopyMs: d(marks.postcopyStart, marks.completed),
    switchoverMs: downtime,
    resumeMs: d(marks.completed, marks.destRunning ?? null),
    cleanupMs: d(marks.destRunning ?? marks.completed, marks.cleanedUp),
  };
}
