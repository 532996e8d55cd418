import { z } from 'zod';
import { parseSize } from './size.ts';
import { loadConfigFile } from './load.ts';
import { settingsSchema, leaves, axisPaths, type AxisPath } from './settings.ts';

const size = (what: string, minBytes: number, why = '') =>
  z
    .union([z.string(), z.number()], { error: `expected a size like 256MiB` })
    .transform((v, ctx) => {
      const n = parseSize(v);
      if (n === undefined) {
        ctx.addIssue({ code: 'custom', message: `expected a size like 256MiB (units B, KiB, MiB, GiB)` });
        return z.NEVER;
      }
      if (n < minBytes) {
        ctx.addIssue({ code: 'custom', message: `expected ${what} of at least ${minBytes / 1024 ** 2}MiB${why ? ` ${why}` : ''}` });
        return z.NEVER;
      }
      return n;
    });

/**
 * The smallest guest memory that boots and migrates. Measured (TCG, QEMU 10.0.2, the host kernel
 * + migralab's initramfs): 80 MiB never became ready (62 s), 88 MiB booted and migrated; 96 MiB
 * leaves a margin for a larger kernel or initramfs.
 */
export const GUEST_MEMORY_MIN = 96 * 1024 ** 2;
/** A margin of guest memory left to its kernel, initramfs and init (not measured: a guard against a working set the guest cannot hold). */
export const GUEST_RESERVED_BYTES = 48 * 1024 ** 2;
/** The largest guest memory a scenario may ask for (a typo guard; the host's own memory is checked before up). */
export const GUEST_MEMORY_MAX = 64 * 1024 ** 3;

export const strategies = ['block', 'shared'] as const;
export type Strategy = (typeof strategies)[number];

export const placements = ['back-and-forth', 'round-robin'] as const;
/** A host drain: every guest leaves this compute node (nova's host-evacuate-live). */
export interface DrainPlacement {
  drain: string;
}
export type Placement = (typeof placements)[number] | DrainPlacement;
export const isDrain = (p: Placement): p is DrainPlacement => typeof p === 'object';

/**
 * Where each of a drain's guests goes (pure): the compute nodes other than the drained one,
 * in topology order, round robin (guest 0 to the first, guest 1 to the second, ...).
 */
export function drainDestinations<N extends { name: string }>(computes: readonly N[], drained: string, guests: number): N[] {
  const others = computes.filter((n) => n.name !== drained);
  if (!others.length) throw new Error(`a drain of ${drained} needs another compute node`);
  return Array.from({ length: guests }, (_, i) => others[i % others.length]!);
}

/** The node a guest on `source` migrates to under `placement`, among the lab's compute nodes (in topology order). */
export function destinationFor<N extends { name: string }>(placement: Exclude<Placement, DrainPlacement>, computes: readonly N[], source: N): N {
  if (placement === 'round-robin') {
    const i = computes.findIndex((n) => n.name === source.name);
    return computes[(i + 1) % computes.length]!;
  }
  const [a, b] = computes;
  return source.name === a!.name ? b! : a!;
}

/** Migration drivers: QMP directly, libvirt (virsh over qemu+tcp, the tutorial's stack), or nova (its compute API, in a lab with stack: openstack). */
export const driverNames = ['qemu', 'libvirt', 'nova'] as const;
export type DriverName = (typeof driverNames)[number];

/** Faults a scenario can inject into a migration (each becomes a cell beside the fault-free one). */
export const faultKinds = ['kill-destination', 'stop-destination', 'cut-link', 'kill-nfs-server', 'fill-destination-disk'] as const;
export type FaultKind = (typeof faultKinds)[number];
export const faultPhases = ['mirror', 'ram', 'switchover-near'] as const;
/** How long a cut link stays down by default. */
export const CUT_LINK_DEFAULT_MS = 8000;

const faultSchema = z
  .strictObject({
    kind: z.enum(faultKinds, { error: `expected one of ${faultKinds.join(', ')}` }),
    /** When: the disk copy (block), the RAM copy, or when RAM remaining first drops under a few MiB. */
    during: z.enum(faultPhases, { error: `expected one of ${faultPhases.join(', ')}` }).optional(),
    /** Or: this many ms after the migration request. */
    afterMs: z.number({ error: 'expected milliseconds after the request' }).int().min(0).optional(),
    /** cut-link: how long the link stays down. */
    forMs: z.number({ error: 'expected milliseconds' }).int().positive().optional(),
  })
  .superRefine((f, ctx) => {
    if (f.during !== undefined && f.afterMs !== undefined) ctx.addIssue({ code: 'custom', path: ['afterMs'], message: 'expected either during or afterMs, not both' });
    if (f.forMs !== undefined && f.kind !== 'cut-link') ctx.addIssue({ code: 'custom', path: ['forMs'], message: 'expected forMs only with kind cut-link' });
  })
  .transform((f) => ({ ...f, ...(f.during === undefined && f.afterMs === undefined ? { during: 'ram' as const } : {}), ...(f.kind === 'cut-link' ? { forMs: f.forMs ?? CUT_LINK_DEFAULT_MS } : {}) }));
export type FaultSpec = z.output<typeof faultSchema>;

/** Strategies a fault applies to: storage faults only where that storage is used. */
export function faultStrategies(f: FaultSpec): readonly Strategy[] {
  if (f.kind === 'kill-nfs-server') return ['shared'];
  if (f.kind === 'fill-destination-disk' || f.during === 'mirror') return ['block'];
  return strategies;
}

/** A short label for a fault: `kill-destination@ram`, `cut-link@afterMs=500,forMs=8000`. */
export function faultLabel(f: FaultSpec): string {
  const when = f.during ?? `afterMs=${f.afterMs}`;
  return `${f.kind}@${when}${f.kind === 'cut-link' ? `,forMs=${f.forMs}` : ''}`;
}

const unique = <T>(what: string) => (xs: readonly T[], ctx: z.RefinementCtx) => {
  xs.forEach((x, i) => {
    if (xs.indexOf(x) !== i) ctx.addIssue({ code: 'custom', path: [i], message: `${what} ${String(x)} is listed twice` });
  });
};

export const scenarioSchema = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { error: 'expected a name of letters, digits, ".", "_" or "-"' }),
    description: z.string().optional(),
    /** Topology file, relative to the scenario file. */
    topology: z.string().default('topologies/two-node.lab.yaml'),
    strategies: z
      .array(z.enum(strategies, { error: `expected one of ${strategies.join(', ')}` }))
      .min(1, { error: 'expected at least one strategy' })
      .superRefine(unique('strategy'))
      .default(['block', 'shared']),
    /** Drivers to run every strategy with, interleaved like the strategies. */
    drivers: z
      .array(z.enum(driverNames, { error: `expected one of ${driverNames.join(', ')}` }))
      .min(1, { error: 'expected at least one driver' })
      .superRefine(unique('driver'))
      .default(['qemu']),
    repetitions: z.number({ error: 'expected a whole number of repetitions' }).int().min(1).max(100).default(3),
    /**
     * Where each migration goes: `back-and-forth` between the first two compute nodes (the
     * tutorial's controller <-> compute1), or `round-robin`: from wherever the guest is to the
     * next compute node in the topology's order (controller -> compute1 -> compute2 -> ...).
     */
    placement: z
      .union([z.enum(placements), z.strictObject({ drain: z.string({ error: 'expected the name of the compute node to drain' }).min(1, { error: 'expected the name of the compute node to drain' }) })], {
        error: `expected ${placements.join(', ')} or { drain: NODE }`,
      })
      .default('back-and-forth'),
    /**
     * Guests per cell (strategy x driver x axis values). With `placement: { drain: NODE }`, K
     * guests boot on NODE and all leave it, `concurrency` at a time; otherwise 1.
     */
    guests: z.number({ error: 'expected a whole number of guests' }).int({ error: 'expected a whole number of guests' }).min(1, { error: 'expected at least 1 guest' }).max(16, { error: 'expected at most 16 guests' }).default(1),
    /** Migrations at once in a drain: a number, or a list (each value is a drain of its own). */
    concurrency: z
      .union([z.number().int().min(1), z.array(z.number().int().min(1)).min(1)], { error: 'expected a whole number of migrations at once (at least 1), or a list of them' })
      .transform((v) => (Array.isArray(v) ? v : [v]))
      .default([1]),
    /**
     * The compute node the guests boot on (default: the topology's first compute node). The
     * tutorial boots on compute1 and migrates to the controller.
     */
    bootOn: z.string({ error: 'expected the name of a compute node' }).min(1, { error: 'expected the name of a compute node' }).optional(),
    guest: z
      .strictObject({
        memory: size('guest memory', GUEST_MEMORY_MIN, '(80MiB did not boot here)')
          .refine((b) => b <= GUEST_MEMORY_MAX, { error: `expected at most ${GUEST_MEMORY_MAX / 1024 ** 3}GiB` })
          .default(256 * 1024 ** 2),
        disk: size('a disk', 16 * 1024 ** 2).default(512 * 1024 ** 2),
        /** How much of the disk is filled with data before the first migration. */
        diskData: size('disk data', 0).default(200 * 1024 ** 2),
      })
      .prefault({}),
    ping: z
      .strictObject({
        intervalMs: z.number({ error: 'expected milliseconds between pings' }).min(1, { error: 'expected at least 1 ms' }).max(1000).default(10),
      })
      .prefault({}),
    /**
     * Limits `migralab run` checks after the run (per strategy); a broken one makes the
     * exit code non-zero. Each applies to the chosen statistic over successful iterations.
     */
    thresholds: z
      .strictObject({
        /** ping.maxGapMs */
        maxInterruptionMs: z.number().positive().optional(),
        /** durationMs */
        maxDurationMs: z.number().positive().optional(),
        /** qemu.downtimeMs */
        maxDowntimeMs: z.number().nonnegative().optional(),
        /** failed / all iterations of a strategy, 0..1 */
        maxFailureRate: z.number().min(0).max(1, { error: 'expected a rate between 0 and 1' }).optional(),
        statistic: z.enum(['max', 'p95', 'p90', 'median'], { error: 'expected max, p95, p90 or median' }).default('max'),
      })
      .optional(),
    /** Defaults for `migralab compare` against a baseline run of this scenario. */
    compare: z
      .strictObject({
        /** A change in a median larger than this (percent of the baseline median) whose 95% interval excludes 0 is a regression. */
        tolerancePct: z.number().min(0).default(10),
      })
      .optional(),
    // Per-cell settings (link conditions, guest workload, tunables, mirror mode): base values.
    ...settingsSchema.shape,
    /**
     * Matrix axes: a dotted settings path and its values, e.g. `link.rate: [unlimited, 100Mbit]`.
     * The runner runs every combination x every strategy, repetitions interleaved.
     */
    axes: z.record(z.string(), z.array(z.unknown(), { error: 'expected a list of values' }).min(1, { error: 'expected at least one value' })).default({}),
    /** Give up on one migration after this long (it is then cancelled; the guest stays on the source). */
    timeoutSeconds: z.number().positive().default(120),
    /**
     * Give up on a migration that makes no progress for this long (a hung destination, a link
     * that stays down). A dead destination or NFS server is given up on at once.
     */
    stallSeconds: z.number().positive().default(20),
    /** Faults to inject: each entry is a cell of its own beside the fault-free ones (qemu driver, local lab). */
    faults: z.array(faultSchema, { error: 'expected a list of faults' }).default([]),
  })
  .superRefine((s, ctx) => {
    for (const [path, values] of Object.entries(s.axes)) {
      if (!(axisPaths as string[]).includes(path)) {
        ctx.addIssue({ code: 'custom', path: ['axes', path], message: `expected one of ${axisPaths.join(', ')}` });
        continue;
      }
      values.forEach((v, i) => {
        const r = leaves[path as AxisPath].safeParse(v);
        if (!r.success) ctx.addIssue({ code: 'custom', path: ['axes', path, i], message: r.error.issues[0]?.message ?? 'invalid value' });
      });
    }
    // A working set the guest cannot hold: mlload would fail in the guest, mid-run.
    const room = s.guest.memory - GUEST_RESERVED_BYTES;
    const tooBig = (ws: number) => ws > room;
    const fits = `expected at most the guest memory minus ${GUEST_RESERVED_BYTES / 1024 ** 2}MiB as a margin for its kernel and init (${(room / 1024 ** 2).toFixed(0)}MiB here)`;
    if (s.workload.memory.rateMiBs > 0 && tooBig(s.workload.memory.workingSet)) ctx.addIssue({ code: 'custom', path: ['workload', 'memory', 'workingSet'], message: fits });
    if (tooBig(s.verify.ramWorkingSet)) ctx.addIssue({ code: 'custom', path: ['verify', 'ramWorkingSet'], message: fits });
    for (const key of ['workload.memory.workingSet'] as const)
      (s.axes[key] ?? []).forEach((v, i) => {
        if (typeof v === 'number' || typeof v === 'string') {
          const r = leaves[key].safeParse(v);
          if (r.success && tooBig(r.data as number)) ctx.addIssue({ code: 'custom', path: ['axes', key, i], message: fits });
        }
      });
    s.faults.forEach((f, i) => {
      const applies = faultStrategies(f).filter((x) => s.strategies.includes(x));
      if (!applies.length)
        ctx.addIssue({ code: 'custom', path: ['faults', i, f.during === 'mirror' && f.kind !== 'kill-nfs-server' ? 'during' : 'kind'], message: `expected a fault that applies to strategies ${s.strategies.join(', ')}: ${f.kind}${f.during === 'mirror' ? ' during mirror' : ''} needs ${faultStrategies(f).join(' or ')}` });
      if (f.kind === 'fill-destination-disk' && f.during !== 'mirror') ctx.addIssue({ code: 'custom', path: ['faults', i, f.during ? 'during' : 'afterMs'], message: 'expected during: mirror (the disk fills while it is copied)' });
      if (f.afterMs !== undefined && f.afterMs >= s.timeoutSeconds * 1000) ctx.addIssue({ code: 'custom', path: ['faults', i, 'afterMs'], message: `expected less than timeoutSeconds (${s.timeoutSeconds * 1000} ms)` });
      const key = JSON.stringify(f);
      if (s.faults.findIndex((g) => JSON.stringify(g) === key) !== i) ctx.addIssue({ code: 'custom', path: ['faults', i], message: 'this fault is listed twice' });
    });
    // libvirt's TLS is its own (x509 certificates in /etc/pki): not set up by the lab
    for (const d of ['libvirt', 'nova'] as const) {
      if (!s.drivers.includes(d)) continue;
      if (s.security.tls !== 'none') ctx.addIssue({ code: 'custom', path: ['security', 'tls'], message: `expected none with the ${d} driver (security.tls psk is set up through the qemu driver only)` });
      (s.axes['security.tls'] ?? []).forEach((v, i) => {
        if (v !== 'none') ctx.addIssue({ code: 'custom', path: ['axes', 'security.tls', i], message: `expected none with the ${d} driver (security.tls psk is set up through the qemu driver only)` });
      });
      break;
    }
    if (isDrain(s.placement) && s.drivers.includes('nova')) ctx.addIssue({ code: 'custom', path: ['drivers'], message: 'expected no nova driver in a drain (nova migrates one server per request; drain through the qemu or libvirt driver)' });
    if (s.faults.length && s.drivers.some((d) => d !== 'qemu')) ctx.addIssue({ code: 'custom', path: ['faults'], message: 'expected drivers: [qemu] with faults (faults are injected through the qemu driver)' });
    // (a concurrency that failed its own check is not a list here)
    const concurrency = Array.isArray(s.concurrency) ? s.concurrency : [];
    if (isDrain(s.placement)) {
      concurrency.forEach((n, i) => {
        if (n > s.guests) ctx.addIssue({ code: 'custom', path: ['concurrency', ...(concurrency.length > 1 ? [i] : [])], message: `expected at most guests (${s.guests}): a drain runs at most one migration per guest at once` });
      });
      if (new Set(concurrency).size !== concurrency.length) ctx.addIssue({ code: 'custom', path: ['concurrency'], message: 'expected each value once' });
      if (s.faults.length) ctx.addIssue({ code: 'custom', path: ['faults'], message: 'expected no faults in a drain (faults are injected into one migration at a time)' });
      if (s.bootOn !== undefined) ctx.addIssue({ code: 'custom', path: ['bootOn'], message: 'expected no bootOn with a drain (the guests boot on the drained node)' });
      if (s.security.tls !== 'none' || (s.axes['security.tls'] ?? []).some((v) => v !== 'none'))
        ctx.addIssue({ code: 'custom', path: ['security', 'tls'], message: 'expected none in a drain (its migrations would set up their pre-shared keys on the drained node at the same time)' });
    } else {
      if (s.guests !== 1) ctx.addIssue({ code: 'custom', path: ['guests'], message: 'expected 1 unless placement is { drain: NODE } (one guest per strategy migrates back and forth)' });
      if (concurrency.some((n) => n !== 1)) ctx.addIssue({ code: 'custom', path: ['concurrency'], message: 'expected 1 unless placement is { drain: NODE }' });
    }
    if (s.guest.diskData > s.guest.disk - 8 * 1024 ** 2)
      ctx.addIssue({ code: 'custom', path: ['guest', 'diskData'], message: 'expected at most the disk size minus 8MiB (the probe area)' });
  });

export type Scenario = z.output<typeof scenarioSchema>;

export function loadScenario(file: string): Promise<Scenario> {
  return loadConfigFile(file, scenarioSchema);
}
