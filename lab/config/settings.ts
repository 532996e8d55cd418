import { z } from 'zod';
import { parseRate, parseSize } from './size.ts';
import { qemuBuildSchema } from '../qemu/builds.ts';

/**
 * What a scenario can vary per matrix cell: link conditions on the migration path,
 * guest workload, migration tunables, the mirror's copy mode. Each leaf has one zod
 * schema used both for the scenario's base values and for every value of an axis.
 */

/**
 * A rate in bits per second (a number is bits), or a word that means "no value of ours":
 * `unlimited` for a link, `default` (QEMU's own cap, 128 MiB/s in 7.2) for the migration
 * bandwidth. Both parse to null, and null parses again to null, so a scenario as run
 * (results.json) parses to itself.
 */
const rate = (what: string, word: 'unlimited' | 'default', example: string) => {
  const expected = `expected ${what} like ${example}, or "${word}"`;
  return z.union([z.string(), z.number(), z.null()], { error: expected }).transform((v, ctx) => {
    if (v === word || v === null) return null;
    const bits = typeof v === 'number' ? (v > 0 ? v : undefined) : parseRate(v);
    if (bits === undefined) {
      ctx.addIssue({ code: 'custom', message: expected });
      return z.NEVER;
    }
    return bits;
  });
};

const bytes = z.union([z.string(), z.number()], { error: 'expected a size like 64MiB' }).transform((v, ctx) => {
  const n = parseSize(v);
  if (n === undefined || n === 0) {
    ctx.addIssue({ code: 'custom', message: 'expected a size like 64MiB' });
    return z.NEVER;
  }
  return n;
});

/** Leaf schemas by dotted path: the only paths an axis may name. */
export const leaves = {
  'link.rate': rate('a link rate', 'unlimited', '100Mbit, 1Gbit or 12MiB/s'),
  'link.lossPct': z.number({ error: 'expected a loss percentage' }).min(0).max(100, { error: 'expected a percentage from 0 to 100' }),
  'link.delayMs': z.number({ error: 'expected a delay in ms' }).min(0),
  'workload.memory.rateMiBs': z.number({ error: 'expected MiB/s of memory to dirty' }).min(0),
  'workload.memory.workingSet': bytes,
  'workload.disk.rateMiBs': z.number({ error: 'expected MiB/s of disk writes' }).min(0),
  'tunables.maxBandwidth': rate('a bandwidth', 'default', '1GiB/s or 800Mbit'),
  'tunables.downtimeLimitMs': z.number({ error: 'expected a downtime limit in ms' }).int().positive(),
  'tunables.autoConverge': z.boolean({ error: 'expected true or false' }),
  'tunables.multifdChannels': z.number({ error: 'expected a number of channels (0 = off)' }).int().min(0).max(16),
  'tunables.postcopy': z.boolean({ error: 'expected true or false' }),
  'mirror.copyMode': z.enum(['background', 'write-blocking'], { error: 'expected background or write-blocking' }),
  /** Which QEMU build runs both sides (lab/qemu/builds.ts). */
  'hypervisor.qemu': qemuBuildSchema,
  /** The guest's memory is checked after every migration (verified.ramIntact). */
  'verify.ram': z.boolean({ error: 'expected true or false' }),
  /** Dump and compare both sides' RAM byte for byte (pauses the guest: not comparable for timing). */
  'verify.ramDump': z.boolean({ error: 'expected true or false' }),
  /** The migration stream and the NBD export over TLS with a pre-shared key (QEMU tls-creds-psk), or in the clear. */
  'security.tls': z.enum(['none', 'psk'], { error: 'expected none or psk' }),
} as const;

export type AxisPath = keyof typeof leaves;
export const axisPaths = Object.keys(leaves) as AxisPath[];

export const settingsSchema = z.strictObject({
  link: z
    .strictObject({ rate: leaves['link.rate'].default(null), lossPct: leaves['link.lossPct'].default(0), delayMs: leaves['link.delayMs'].default(0) })
    .prefault({}),
  workload: z
    .strictObject({
      memory: z.strictObject({ rateMiBs: leaves['workload.memory.rateMiBs'].default(0), workingSet: leaves['workload.memory.workingSet'].default(64 * 1024 ** 2) }).prefault({}),
      disk: z.strictObject({ rateMiBs: leaves['workload.disk.rateMiBs'].default(0) }).prefault({}),
    })
    .prefault({}),
  tunables: z
    .strictObject({
      maxBandwidth: leaves['tunables.maxBandwidth'].default(null),
      downtimeLimitMs: leaves['tunables.downtimeLimitMs'].optional(),
      autoConverge: leaves['tunables.autoConverge'].default(false),
      multifdChannels: leaves['tunables.multifdChannels'].default(0),
      postcopy: leaves['tunables.postcopy'].default(false),
    })
    .prefault({}),
  mirror: z.strictObject({ copyMode: leaves['mirror.copyMode'].default('background') }).prefault({}),
  hypervisor: z
    .strictObject({
      qemu: leaves['hypervisor.qemu'].default('system'),
      /**
       * Run even where a known hypervisor issue would corrupt what is measured (QEMU < 9.0
       * under TCG with a memory workload): to show the issue on purpose.
       */
      allowKnownIssues: z.boolean({ error: 'expected true or false' }).default(false),
    })
    .prefault({}),
  security: z.strictObject({ tls: leaves['security.tls'].default('none') }).prefault({}),
  verify: z
    .strictObject({
      ram: leaves['verify.ram'].default(true),
      /** When the cell has no memory workload of its own: the working set of the checking writer. */
      ramWorkingSet: bytes.default(4 * 1024 ** 2),
      /** ... and the rate it rewrites it at, MiB/s. */
      ramRateMiBs: z.number({ error: 'expected MiB/s' }).positive({ error: 'expected a rate above 0 MiB/s' }).default(1),
      ramDump: leaves['verify.ramDump'].default(false),
    })
    .prefault({}),
});

export type Settings = z.output<typeof settingsSchema>;

/** Sets an already-parsed leaf value at a dotted path in a copy of the settings. */
export function withValue(s: Settings, path: AxisPath, value: unknown): Settings {
  const copy = structuredClone(s) as Record<string, unknown>;
  const keys = path.split('.');
  let obj = copy;
  for (const k of keys.slice(0, -1)) obj = obj[k] as Record<string, unknown>;
  obj[keys[keys.length - 1]!] = value;
  return copy as Settings;
}
