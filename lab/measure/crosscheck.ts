/**
 * Three views of one blackout must agree: the network's (largest gap between ping
 * replies), the hypervisor's (QEMU downtime), the guest's (time its clock lost or
 * its probe loop stalled). An iteration whose views contradict each other is flagged,
 * never silently averaged.
 */
export interface Views {
  networkGapMs: number | null;
  pingIntervalMs: number;
  qemuDowntimeMs: number | null;
  /** Destination RESUME minus source STOP (QMP event timestamps, µs). */
  qemuEventDowntimeMs?: number | null;
  guestPauseMs: number | null;
  guestUncertaintyMs: number | null;
  durationMs: number | null;
  qemuTotalMs: number | null;
  /** The migration completed (a completed migration cannot have taken 0 ms). */
  completed?: boolean;
  bytesMoved: number | null;
  linkRateBitsPerSec: number | null;
  /** libvirt's own downtime and elapsed time (virsh domjobinfo --completed), when libvirt drove it. */
  libvirtDowntimeMs?: number | null;
  libvirtElapsedMs?: number | null;
}

/** QMP event timestamps are microseconds; QEMU's downtime is whole milliseconds, rounded down. */
const EVENT_RESOLUTION_MS = 0.001;

/** QEMU reports whole milliseconds. */
const QEMU_MS = 1;

export function crossCheck(v: Views): string[] {
  const flags: string[] = [];
  if (v.completed && v.qemuTotalMs === 0) flags.push("QEMU's total time is 0 ms for a completed migration: a figure read before QEMU computed it");
  if (v.completed && v.qemuDowntimeMs === 0 && (v.qemuEventDowntimeMs ?? 0) >= 1)
    flags.push(`QEMU's downtime is 0 ms but its own STOP and RESUME events are ${v.qemuEventDowntimeMs!.toFixed(3)} ms apart`);
  // The events bracket QEMU's downtime (STOP before it starts counting, RESUME after the destination loaded the device state).
  if (v.qemuEventDowntimeMs != null && v.qemuDowntimeMs !== null && v.qemuEventDowntimeMs < v.qemuDowntimeMs - QEMU_MS - EVENT_RESOLUTION_MS)
    flags.push(`QEMU's STOP and RESUME events are ${v.qemuEventDowntimeMs.toFixed(3)} ms apart, less than the ${v.qemuDowntimeMs} ms downtime QEMU reports`);
  if (v.libvirtDowntimeMs != null && v.qemuDowntimeMs !== null && v.libvirtDowntimeMs + QEMU_MS < v.qemuDowntimeMs - QEMU_MS)
    flags.push(`libvirt says the downtime was ${v.libvirtDowntimeMs} ms, less than QEMU's ${v.qemuDowntimeMs} ms`);
  if (v.libvirtElapsedMs != null && v.qemuTotalMs !== null && v.libvirtElapsedMs + QEMU_MS < v.qemuTotalMs)
    flags.push(`libvirt's job took ${v.libvirtElapsedMs} ms, less than QEMU's total time ${v.qemuTotalMs} ms`);
  if (v.networkGapMs !== null && v.qemuDowntimeMs !== null && v.networkGapMs < v.qemuDowntimeMs - QEMU_MS)
    flags.push(`network gap ${v.networkGapMs.toFixed(1)} ms is shorter than QEMU's downtime ${v.qemuDowntimeMs} ms: the guest answered while QEMU says it was stopped`);
  if (v.guestPauseMs !== null && v.networkGapMs !== null) {
    const u = v.guestUncertaintyMs ?? 0;
    if (v.guestPauseMs > v.networkGapMs + u + v.pingIntervalMs)
      flags.push(`the guest lost ${v.guestPauseMs.toFixed(1)} ms (±${u.toFixed(1)}) but the network saw at most a ${v.networkGapMs.toFixed(1)} ms gap`);
  }
  if (v.guestPauseMs !== null && v.qemuDowntimeMs !== null) {
    const u = (v.guestUncertaintyMs ?? 0) + QEMU_MS;
    if (v.guestPauseMs < v.qemuDowntimeMs - u)
      flags.push(`the guest lost only ${v.guestPauseMs.toFixed(1)} ms (±${(v.guestUncertaintyMs ?? 0).toFixed(1)}) but QEMU says it was stopped ${v.qemuDowntimeMs} ms`);
  }
  if (v.durationMs !== null && v.qemuTotalMs !== null && v.durationMs < v.qemuTotalMs - QEMU_MS)
    flags.push(`the harness measured ${v.durationMs.toFixed(1)} ms, less than QEMU's total time ${v.qemuTotalMs} ms`);
  if (v.linkRateBitsPerSec && v.bytesMoved !== null && v.durationMs !== null) {
    const physicalMs = ((v.bytesMoved * 8) / v.linkRateBitsPerSec) * 1000;
    if (v.durationMs < physicalMs * 0.95)
      flags.push(`${v.bytesMoved} bytes moved in ${v.durationMs.toFixed(0)} ms: faster than the ${v.linkRateBitsPerSec / 1e6} Mbit/s link allows (${physicalMs.toFixed(0)} ms)`);
  }
  return flags;
}
