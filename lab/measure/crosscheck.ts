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
  guestPauseMs: number | null;
  guestUncertaintyMs: number | null;
  durationMs: number | null;
  qemuTotalMs: number | null;
  bytesMoved: number | null;
  linkRateBitsPerSec: number | null;
}

/** QEMU reports whole milliseconds. */
const QEMU_MS = 1;

export function crossCheck(v: Views): string[] {
  const flags: string[] = [];
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
