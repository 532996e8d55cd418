/**
 * Link conditions on the migration path: a bandwidth cap (htb or tbf), packet loss
 * (nftables) and, where the kernel has the netem qdisc, delay.
 *
 * Where each condition lives, on every node given (so both directions are shaped):
 *
 * - Rate and delay: the egress of the node's `uplink` (its veth to the switch).
 *   Migration traffic leaves the node's own stack through br0 and then uplink, so a
 *   qdisc there sees it; traffic arriving from the switch is not touched.
 *   With `ports` (default 4444 = QEMU migration incl. multifd and post-copy, 10809 =
 *   NBD for the block mirror) the root is an htb whose one class holds the rate; u32
 *   filters put TCP packets whose source or destination port is one of `ports` in that
 *   class. Everything else (ping, ARP, NFS, the guests' bridged frames) is
 *   unclassified and takes htb's direct queue, which has no rate at all — not "a very
 *   high rate", really unshaped, and dequeued before any class.
 *   With `ports: []` the whole device is capped by a plain tbf.
 * - Loss: an nftables table of our own (`inet migralab`), a rule in the input hook
 *   that drops N/10000 of the TCP packets to or from `ports` (`numgen random`), with
 *   counters. Dropping on input, at the receiver, is loss as TCP sees it on a wire:
 *   the sender learns of it only by missing ACKs. (Dropping in the sender's output
 *   hook is different: TCP gets an immediate local error and just retries.)
 *   The kernel drops skbs, not wire frames: between namespaces TCP's GSO
 *   super-packets (~36 KiB on average here, capped or not) cross the veths whole and
 *   are dropped whole. So 10 % is 10 % of the skbs and, on average, of the bytes, but
 *   the losses come in bursts of up to ~45 segments. The counters (seen, dropped; skbs
 *   and bytes) record what happened.
 *
 * Why u32 and not `fw` marks set by nftables: this kernel has no `fw` classifier
 * (nor `flower`); u32 comes with every kernel that has htb. And the cap stands on
 * its own: one tool, no ordering between an nft table and a tc filter, no mark bits
 * shared with anyone.
 * u32's `ip dport` reads a fixed offset, i.e. it assumes an IPv4 header without
 * options; Linux TCP never sends IP options, and IPv6 gets its own filters.
 *
 * Our qdiscs carry the handle 4d4c: ("ML"): `clearLinkConditions` removes a root
 * qdisc only when it has that handle, and `applyLinkConditions` refuses to replace a
 * root qdisc that someone else configured.
 */
import { MigralabError } from '../errors.ts';
import type { NodeTransport } from '../exec/transport.ts';

export interface LinkConditions {
  /** Bandwidth cap on each node's egress, bits per second. */
  rateBitsPerSec?: number;
  /** Share of the packets on the shaped ports dropped on arrival at each node (data at one end, ACKs at the other), percent, 0.01 resolution. */
  lossPct?: number;
  /** One-way delay added on each node's egress (so the round trip grows by 2x), ms. Needs netem. */
  delayMs?: number;
}

export interface ShapingOptions {
  /** The device whose egress is shaped on every node. Default `uplink`. */
  device?: string;
  /** TCP ports (source or destination) to shape; `[]` shapes the whole device. Default 4444 and 10809. */
  ports?: number[];
}

/** What was applied, for results files: every number is the one handed to the kernel. */
export interface AppliedLink {
  rateBitsPerSec?: number;
  lossPct?: number;
  delayMs?: number;
  /** `node:device` for each shaped egress. */
  devices: string[];
  /** Shaped TCP ports; empty means the whole device. */
  ports: number[];
  /** How rate and delay are applied: htb (ports only), tbf (whole device), netem alone (delay on the whole device), or none. */
  method: 'htb' | 'tbf' | 'netem' | 'none';
  lossMethod: 'nftables' | 'none';
  /** A netem qdisc was installed (delay asked for, and the kernel has it). */
  netem: boolean;
  /** Token bucket size of the cap, bytes. */
  burstBytes?: number;
}

export const MIGRATION_PORTS: readonly number[] = [4444, 10809];
export const DEFAULT_DEVICE = 'uplink';
/** Handle of our root qdisc (0x4d4c = "ML"), and of the qdisc under its class. */
export const ROOT_HANDLE = '4d4c:';
export const SHAPED_CLASS = '4d4c:1';
export const LEAF_HANDLE = '4d4d:';
export const NFT_FAMILY = 'inet';
export const NFT_TABLE = 'migralab';
/** numgen resolution for loss: 1/10000, i.e. 0.01 %. */
const LOSS_SCALE = 10_000;
/** The rate of the htb class when only delay is asked for on ports: effectively no cap. */
const UNCAPPED_BITS = 100_000_000_000;
const MIN_BURST_BYTES = 64 * 1024;

// ---------------------------------------------------------------------------------
// Pure parts

/**
 * Migration efficiency: the share of the link's capacity the migration used,
 * bytes*8 / (duration_s * rate). NaN when duration or rate is not positive. It can
 * exceed 1 a little for short transfers: a full token bucket and the last packet go
 * out ahead of the rate (at most burstBytes + 64 KiB).
 */
export function efficiency(bytesMoved: number, durationMs: number, rateBitsPerSec: number): number {
  if (!(durationMs > 0) || !(rateBitsPerSec > 0) || !(bytesMoved >= 0)) return NaN;
  return (bytesMoved * 8) / ((durationMs / 1000) * rateBitsPerSec);
}

/**
 * Token bucket for a cap: at least 64 KiB, so a TSO/GSO super-packet (up to 64 KiB on
 * a veth) always fits the bucket, and at least 5 ms of the rate, so timer granularity
 * does not eat into high rates. A bigger bucket lets the first burst through at line
 * speed; 64 KiB at 16 Mbit/s is a 33 ms head start.
 */
export function burstBytes(rateBitsPerSec: number): number {
  return Math.max(MIN_BURST_BYTES, Math.ceil((rateBitsPerSec / 8) * 0.005));
}

/** netem's queue must hold what arrives during the delay (twice the bandwidth-delay product, in 1500-byte packets), within 1000..100000. */
export function netemLimit(rateBitsPerSec: number | undefined, delayMs: number): number {
  const rate = rateBitsPerSec ?? UNCAPPED_BITS;
  const bdpPackets = Math.ceil(((rate / 8) * (delayMs / 1000) * 2) / 1500);
  return Math.min(100_000, Math.max(1000, bdpPackets + 1000));
}

function fmtMs(ms: number): string {
  return `${Number(ms.toFixed(3))}ms`;
}

/** `tc ... netem delay` for a qdisc at `parent` (`root` or a class id). */
export function netemArgv(device: string, parent: string, delayMs: number, limit: number, handle = LEAF_HANDLE): string[] {
  const where = parent === 'root' ? ['root'] : ['parent', parent];
  return ['tc', 'qdisc', 'add', 'dev', device, ...where, 'handle', handle, 'netem', 'delay', fmtMs(delayMs), 'limit', String(limit)];
}

/** u32 filters sending TCP packets from or to each port (IPv4 and IPv6) to `flowid`. */
export function portFilterArgv(device: string, ports: readonly number[], flowid = SHAPED_CLASS): string[][] {
  const out: string[][] = [];
  for (const [proto, prio, match] of [
    ['ip', '1', 'ip'],
    ['ipv6', '2', 'ip6'],
  ] as const) {
    for (const port of ports) {
      for (const dir of ['dport', 'sport']) {
        out.push([
          'tc', 'filter', 'add', 'dev', device, 'parent', ROOT_HANDLE, 'protocol', proto, 'prio', prio,
          'u32', 'match', match, 'protocol', '6', '0xff', 'match', match, dir, String(port), '0xffff', 'flowid', flowid,
        ]);
      }
    }
  }
  return out;
}

/**
 * The tc commands that put rate and delay on `device`'s egress, in order; empty when
 * neither is asked for. Ports given: htb root (unclassified traffic takes the
 * unshaped direct queue), one class at the rate, a pfifo (or netem) under it, u32
 * filters for the ports. No ports: tbf root (or netem alone for delay only).
 */
export function tcApplyArgv(device: string, cond: Pick<LinkConditions, 'rateBitsPerSec' | 'delayMs'>, ports: readonly number[]): string[][] {
  const { rateBitsPerSec: rate, delayMs } = cond;
  const delay = delayMs !== undefined && delayMs > 0 ? delayMs : undefined;
  if (rate === undefined && delay === undefined) return [];
  const tc = (...a: string[]) => ['tc', ...a];
  if (ports.length === 0) {
    if (rate === undefined) return [netemArgv(device, 'root', delay!, netemLimit(undefined, delay!), ROOT_HANDLE)];
    const burst = burstBytes(rate);
    return [
      tc('qdisc', 'add', 'dev', device, 'root', 'handle', ROOT_HANDLE, 'tbf', 'rate', `${rate}bit`, 'burst', String(burst), 'latency', '100ms'),
      ...(delay === undefined ? [] : [netemArgv(device, '4d4c:1', delay, netemLimit(rate, delay))]),
    ];
  }
  const classRate = rate ?? UNCAPPED_BITS;
  const burst = burstBytes(classRate);
  return [
    tc('qdisc', 'add', 'dev', device, 'root', 'handle', ROOT_HANDLE, 'htb', 'default', '0', 'direct_qlen', '1000'),
    tc('class', 'add', 'dev', device, 'parent', ROOT_HANDLE, 'classid', SHAPED_CLASS, 'htb',
      'rate', `${classRate}bit`, 'ceil', `${classRate}bit`, 'burst', String(burst), 'cburst', String(burst), 'quantum', '65536'),
    delay === undefined
      ? tc('qdisc', 'add', 'dev', device, 'parent', SHAPED_CLASS, 'handle', LEAF_HANDLE, 'pfifo', 'limit', '1000')
      : netemArgv(device, SHAPED_CLASS, delay, netemLimit(rate, delay)),
    ...portFilterArgv(device, ports),
  ];
}

export function tcClearArgv(device: string): string[] {
  return ['tc', 'qdisc', 'del', 'dev', device, 'root', 'handle', ROOT_HANDLE];
}

/** nft reads its ruleset from stdin. */
export const NFT_STDIN_ARGV: readonly string[] = ['nft', '-f', '-'];

/** Removes our table if it is there, atomically (nft 1.0.6 has no `destroy`). */
export function nftClearRuleset(): string {
  return `add table ${NFT_FAMILY} ${NFT_TABLE}\ndelete table ${NFT_FAMILY} ${NFT_TABLE}\n`;
}

/**
 * Our table, replacing any earlier one in the same transaction: in the input hook,
 * drop lossPct % of the TCP packets to or from `ports` (all TCP when `ports` is empty),
 * counting what was dropped.
 */
export function nftLossRuleset(lossPct: number, ports: readonly number[]): string {
  const n = Math.round(lossPct * (LOSS_SCALE / 100));
  // The first counter sees every packet on the ports, the second only those dropped.
  const drop = `counter numgen random mod ${LOSS_SCALE} < ${n} counter drop`;
  const set = `{ ${ports.join(', ')} }`;
  const rules = ports.length === 0 ? [`meta l4proto tcp ${drop}`] : [`tcp dport ${set} ${drop}`, `tcp sport ${set} ${drop}`];
  return [
    nftClearRuleset().trimEnd(),
    `table ${NFT_FAMILY} ${NFT_TABLE} {`,
    '  chain input {',
    '    type filter hook input priority 0; policy accept;',
    ...rules.map((r) => `    ${r}`),
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The root qdisc in `tc -j qdisc show dev X` output. */
export function parseRootQdisc(json: string): { kind: string; handle: string } | undefined {
  const list = JSON.parse(json || '[]') as { kind?: string; handle?: string; root?: boolean }[];
  const root = list.find((q) => q.root);
  return root && root.kind !== undefined && root.handle !== undefined ? { kind: root.kind, handle: root.handle } : undefined;
}

/** What the loss rules saw and dropped (packets as the kernel handles them: a GSO/GRO super-packet counts once). */
export interface LossCounters {
  seenPackets: number;
  seenBytes: number;
  droppedPackets: number;
  droppedBytes: number;
}

/** Sums the loss rules' counters (first counter: seen, second: dropped) in `nft -j list table inet migralab` output. */
export function parseLossCounters(json: string): LossCounters {
  const doc = JSON.parse(json) as { nftables?: { rule?: { expr?: Record<string, unknown>[] } }[] };
  const sum: LossCounters = { seenPackets: 0, seenBytes: 0, droppedPackets: 0, droppedBytes: 0 };
  for (const item of doc.nftables ?? []) {
    const expr = item.rule?.expr ?? [];
    if (!expr.some((e) => 'drop' in e)) continue;
    const counters = expr.flatMap((e) => (e['counter'] ? [e['counter'] as { packets?: number; bytes?: number }] : []));
    const [seen, dropped] = counters.length >= 2 ? counters : [undefined, counters[0]];
    sum.seenPackets += seen?.packets ?? 0;
    sum.seenBytes += seen?.bytes ?? 0;
    sum.droppedPackets += dropped?.packets ?? 0;
    sum.droppedBytes += dropped?.bytes ?? 0;
  }
  return sum;
}

/** Checks conditions and options; normalised copies, or a CONFIG error naming the bad value. */
export function checkConditions(cond: LinkConditions, opts: ShapingOptions = {}): { cond: LinkConditions; device: string; ports: number[] } {
  const bad = (msg: string) => new MigralabError('CONFIG', `link conditions: ${msg}`);
  const out: LinkConditions = {};
  if (cond.rateBitsPerSec !== undefined) {
    if (!Number.isFinite(cond.rateBitsPerSec) || cond.rateBitsPerSec < 1) throw bad(`rate must be a positive number of bits per second (got ${cond.rateBitsPerSec})`);
    out.rateBitsPerSec = Math.round(cond.rateBitsPerSec);
  }
  if (cond.lossPct !== undefined) {
    if (!Number.isFinite(cond.lossPct) || cond.lossPct < 0 || cond.lossPct > 100) throw bad(`loss must be a percentage in 0..100 (got ${cond.lossPct})`);
    const n = Math.round(cond.lossPct * (LOSS_SCALE / 100));
    if (cond.lossPct > 0 && n === 0) throw bad(`loss ${cond.lossPct}% is below the 0.01% resolution`);
    if (n > 0) out.lossPct = n / (LOSS_SCALE / 100);
  }
  if (cond.delayMs !== undefined) {
    if (!Number.isFinite(cond.delayMs) || cond.delayMs < 0) throw bad(`delay must be a non-negative number of ms (got ${cond.delayMs})`);
    if (cond.delayMs > 0) out.delayMs = cond.delayMs;
  }
  const device = opts.device ?? DEFAULT_DEVICE;
  if (!/^[A-Za-z0-9_.@-]{1,15}$/.test(device)) throw bad(`"${device}" is not a network device name`);
  const ports = [...new Set(opts.ports ?? MIGRATION_PORTS)];
  for (const p of ports) if (!Number.isInteger(p) || p < 1 || p > 65535) throw bad(`port ${p} is not a TCP port`);
  return { cond: out, device, ports };
}

// ---------------------------------------------------------------------------------
// On nodes

function firstLine(s: string): string {
  return s.trim().split('\n').find((l) => l.trim())?.trim() ?? '';
}

/** Tries a netem qdisc on `lo` in the node's namespace and removes it; the detail is tc's complaint when it fails. */
export async function probeNetem(node: NodeTransport): Promise<{ available: boolean; detail: string }> {
  const add = await node.run(netemArgv('lo', 'root', 1, 1000, ROOT_HANDLE), { check: false, timeoutMs: 10_000 });
  if (add.exitCode !== 0) return { available: false, detail: firstLine(add.stderr) || `exit ${add.exitCode}` };
  await node.run(['tc', 'qdisc', 'del', 'dev', 'lo', 'root', 'handle', ROOT_HANDLE], { timeoutMs: 10_000 });
  return { available: true, detail: '' };
}

export async function netemAvailable(node: NodeTransport): Promise<boolean> {
  return (await probeNetem(node)).available;
}

/** The device's root qdisc (the kernel's default shows as handle 0:), or 'no device'. */
async function rootQdisc(node: NodeTransport, device: string): Promise<{ kind: string; handle: string } | 'no device'> {
  const r = await node.run(['tc', '-j', 'qdisc', 'show', 'dev', device], { check: false, timeoutMs: 10_000 });
  if (r.exitCode !== 0) {
    if (/Cannot find device/i.test(r.stderr)) return 'no device';
    throw new MigralabError('LAB', `tc qdisc show dev ${device} on ${node.name}: ${firstLine(r.stderr) || `exit ${r.exitCode}`}`);
  }
  return parseRootQdisc(r.stdout) ?? { kind: 'none', handle: '0:' };
}

/** Is this a root qdisc that someone else configured (not ours, not the kernel's default)? */
function foreign(q: { kind: string; handle: string }): boolean {
  return q.handle !== ROOT_HANDLE && q.handle !== '0:' && q.kind !== 'noqueue';
}

/**
 * Puts the conditions on every node (replacing conditions applied earlier). Delay
 * without netem is refused before anything changes; a failure half-way removes
 * what was applied and rethrows.
 */
export async function applyLinkConditions(nodes: NodeTransport[], cond: LinkConditions, opts: ShapingOptions = {}): Promise<AppliedLink> {
  const { cond: c, device, ports } = checkConditions(cond, opts);

  // Look before touching anything.
  if (c.delayMs !== undefined) {
    for (const node of nodes) {
      const probe = await probeNetem(node);
      if (!probe.available)
        throw new MigralabError(
          'CONFIG',
          `delay needs the netem qdisc, which this kernel lacks (tc: ${probe.detail}) on ${node.name}; a rate cap (htb/tbf) and loss (nftables) work without it`,
        );
    }
  }
  for (const node of nodes) {
    const q = await rootQdisc(node, device);
    if (q === 'no device') throw new MigralabError('LAB', `${node.name} has no network device ${device} to shape`);
    if (foreign(q))
      throw new MigralabError('LAB', `${node.name}:${device} already has a root qdisc (${q.kind} ${q.handle}) that migralab did not create; remove it first`);
  }

  await clearLinkConditions(nodes, { device });
  try {
    for (const node of nodes) {
      for (const argv of tcApplyArgv(device, c, ports)) await node.run(argv, { timeoutMs: 10_000 });
      if (c.lossPct !== undefined) await node.run(NFT_STDIN_ARGV, { input: nftLossRuleset(c.lossPct, ports), timeoutMs: 10_000 });
    }
  } catch (e) {
    await clearLinkConditions(nodes, { device }).catch(() => {});
    throw e;
  }

  const shaped = c.rateBitsPerSec !== undefined || c.delayMs !== undefined;
  const method: AppliedLink['method'] = !shaped ? 'none' : ports.length ? 'htb' : c.rateBitsPerSec !== undefined ? 'tbf' : 'netem';
  return {
    ...(c.rateBitsPerSec !== undefined ? { rateBitsPerSec: c.rateBitsPerSec } : {}),
    ...(c.lossPct !== undefined ? { lossPct: c.lossPct } : {}),
    ...(c.delayMs !== undefined ? { delayMs: c.delayMs } : {}),
    devices: shaped ? nodes.map((n) => `${n.name}:${device}`) : [],
    ports,
    method,
    lossMethod: c.lossPct !== undefined ? 'nftables' : 'none',
    netem: c.delayMs !== undefined,
    ...(c.rateBitsPerSec !== undefined ? { burstBytes: burstBytes(c.rateBitsPerSec) } : {}),
  };
}

/** Removes our root qdisc and our nft table from every node; nothing there is not an error. */
export async function clearLinkConditions(nodes: NodeTransport[], opts: Pick<ShapingOptions, 'device'> = {}): Promise<void> {
  const device = opts.device ?? DEFAULT_DEVICE;
  for (const node of nodes) {
    const q = await rootQdisc(node, device);
    if (q !== 'no device' && q.handle === ROOT_HANDLE) await node.run(tcClearArgv(device), { timeoutMs: 10_000 });
    const listed = await node.run(['nft', 'list', 'table', NFT_FAMILY, NFT_TABLE], { check: false, timeoutMs: 10_000 });
    if (listed.exitCode === 0) await node.run(NFT_STDIN_ARGV, { input: nftClearRuleset(), timeoutMs: 10_000 });
  }
}

/** What the loss rules on a node have seen and dropped so far; undefined when our table is not there. */
export async function lossCounters(node: NodeTransport): Promise<LossCounters | undefined> {
  const r = await node.run(['nft', '-j', 'list', 'table', NFT_FAMILY, NFT_TABLE], { check: false, timeoutMs: 10_000 });
  if (r.exitCode !== 0) return undefined;
  return parseLossCounters(r.stdout);
}
