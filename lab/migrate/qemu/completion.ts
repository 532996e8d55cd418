/**
 * Reading QEMU's own figures of a finished migration right (pure: unit-tested with
 * recorded replies).
 *
 * - QEMU 7.2 turns the state (and sends the MIGRATION event) `completed` before its
 *   migration thread has computed `total-time` and `downtime`: a `query-migrate` in that
 *   window answers 0 for both, `setup-time` already present. Take the figures only from a
 *   `completed` reply given once the source is in `postmigrate`, and retry briefly until
 *   the times are there.
 * - A QEMU that itself arrived by migration answers `{"status": "completed"}` with no
 *   times at all (its incoming migration) until its own outgoing one is under way: such a
 *   reply is never taken for the outgoing migration's.
 * - A figure QEMU did not give is null with a note, never 0.
 */
import type { MigrationInfo } from '../../qemu/qmp.ts';

export interface CompletedFigures {
  totalTimeMs: number | null;
  downtimeMs: number | null;
  setupTimeMs: number | null;
  ramBytes: number | null;
  /** RAM passes (dirty-sync-count). */
  iterations: number | null;
}

export interface CompletionReading {
  /** True when this reply is the outgoing migration's final word: stop retrying. */
  final: boolean;
  figures: CompletedFigures;
  /** Why a figure is null (empty when every figure is there). */
  notes: string[];
}

const positive = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v > 0;
const present = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/**
 * One `query-migrate` reply on the source, with the source's run state (query-status)
 * at the time: final only when the source is in `postmigrate`, the status is
 * `completed` and QEMU's total time is there (> 0; a completed migration cannot take 0 ms).
 */
export function readCompletion(info: MigrationInfo, sourceStatus: string): CompletionReading {
  const notes: string[] = [];
  const completed = info.status === 'completed';
  const final = completed && sourceStatus === 'postmigrate' && positive(info['total-time']) && present(info.downtime);
  const figures: CompletedFigures = { totalTimeMs: null, downtimeMs: null, setupTimeMs: null, ramBytes: null, iterations: null };
  if (!completed) {
    notes.push(`query-migrate said ${info.status ?? 'nothing'}, not completed: QEMU's own figures are not known`);
    return { final: false, figures, notes };
  }
  const stale = !positive(info['total-time']) && info.ram === undefined;
  if (stale) notes.push('query-migrate answered "completed" without times or RAM counters (a QEMU that arrived by migration answers for its incoming one): QEMU\'s figures are not known');
  if (positive(info['total-time'])) figures.totalTimeMs = info['total-time'];
  else if (!stale) notes.push(`QEMU gave ${info['total-time'] === 0 ? 'a total time of 0 ms' : 'no total time'} for a completed migration (QEMU 7.2 answers 0 until its migration thread has finished): total time not known`);
  // A downtime of 0 ms next to a total time of 0 is the same unfinished computation.
  if (present(info.downtime) && (info.downtime > 0 || figures.totalTimeMs !== null)) figures.downtimeMs = info.downtime;
  else if (!stale) notes.push(`QEMU gave ${info.downtime === 0 ? 'a downtime of 0 ms before its total time' : 'no downtime'}: downtime not known`);
  if (present(info['setup-time'])) figures.setupTimeMs = info['setup-time'];
  else if (!stale) notes.push('QEMU gave no setup time');
  if (info.ram && present(info.ram.transferred) && info.ram.transferred > 0) figures.ramBytes = info.ram.transferred;
  else if (!stale) notes.push('QEMU gave no RAM byte count');
  if (info.ram && present(info.ram['dirty-sync-count'])) figures.iterations = info.ram['dirty-sync-count'];
  return { final, figures, notes };
}

/** Event downtime: destination RESUME minus source STOP, from the QMP events' own timestamps (µs). */
export function eventDowntimeMs(stop: { seconds: number; microseconds: number } | undefined, resume: { seconds: number; microseconds: number } | undefined): number | null {
  if (!stop || !resume) return null;
  const us = (resume.seconds - stop.seconds) * 1_000_000 + (resume.microseconds - stop.microseconds);
  return us / 1000;
}
