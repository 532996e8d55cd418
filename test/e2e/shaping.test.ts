/**
 * Link conditions for real: two namespaces of our own joined by a veth named `uplink`
 * at both ends, real TCP transfers through the kernel's htb/tbf and nftables.
 */
import { spawn } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LocalNode } from '../../lab/exec/local.ts';
import { run } from '../../lab/exec/run.ts';
import { terminate } from '../../lab/exec/kill.ts';
import { MigralabError } from '../../lab/errors.ts';
import {
  applyLinkConditions,
  clearLinkConditions,
  efficiency,
  burstBytes,
  lossCounters,
  netemAvailable,
  ROOT_HANDLE,
  type LinkConditions,
} from '../../lab/net/shaping.ts';

const NS_A = 'mlab-shapetest-a';
const NS_B = 'mlab-shapetest-b';
const ADDR_A = '10.79.0.1';
const ADDR_B = '10.79.0.2';
const MiB = 1024 * 1024;
const RATE = 16_000_000;
const SCRIPT_LIMIT_MS = 15_000;

const a = new LocalNode('a', NS_A);
const b = new LocalNode('b', NS_B);
const nodes = [a, b];
const started = new Set<number>();

/**
 * One end of a transfer, run by `node -e`: `send` writes exactly N bytes then closes,
 * `recv` reads N bytes and prints {bytes, ms} timed to the last byte from the earliest
 * moment data could flow (accept on the listening end, the connect() call on the
 * other), so the time is never shorter than the transfer. The listening end prints
 * "listening" first. Bounded by a time limit.
 */
const END_SCRIPT = `
const net = require('node:net');
const [role, side, host, port, total, limitMs] = process.argv.slice(1);
const want = Number(total);
setTimeout(() => { console.log(JSON.stringify({ error: 'time limit' })); process.exit(2); }, Number(limitMs)).unref();
function handle(s, t0) {
  s.on('error', (e) => { console.log(JSON.stringify({ error: e.message })); process.exit(1); });
  if (role === 'send') {
    const buf = Buffer.alloc(65536, 7);
    let left = want;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, buf.length);
        left -= n;
        if (!s.write(buf.subarray(0, n))) { s.once('drain', pump); return; }
      }
      s.end();
    };
    pump();
    s.on('close', () => process.exit(0));
  } else {
    let n = 0;
    const done = () => { console.log(JSON.stringify({ bytes: n, ms: performance.now() - t0 })); process.exit(0); };
    s.on('data', (d) => { n += d.length; if (n >= want) done(); });
    s.on('end', done);
  }
}
if (side === 'listen') net.createServer((s) => handle(s, performance.now())).listen(Number(port), host, () => console.log('listening'));
else { const t0 = performance.now(); const s = net.connect(Number(port), host); s.on('connect', () => handle(s, t0)); s.on('error', (e) => { console.log(JSON.stringify({ error: e.message })); process.exit(1); }); }
`;

interface End {
  pid: number;
  /** Resolves with the first line of stdout that matches. */
  line(re: RegExp): Promise<string>;
}

function startEnd(node: LocalNode, args: string[]): End {
  const argv = [...node.prefix, process.execPath, '-e', END_SCRIPT, ...args];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) throw new Error('could not start a transfer end');
  started.add(child.pid);
  let out = '';
  let exited = false;
  const waiters: (() => void)[] = [];
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    waiters.forEach((w) => w());
  });
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  child.on('exit', () => {
    exited = true;
    waiters.forEach((w) => w());
  });
  return {
    pid: child.pid,
    line: (re) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const hit = out.split('\n').find((l) => re.test(l));
          if (hit !== undefined) resolve(hit);
          else if (exited) reject(new Error(`transfer end exited without ${re}: ${out}`));
        };
        waiters.push(check);
        check();
      }),
  };
}

/**
 * Moves `bytes` over TCP between a listener on B (ADDR_B:port) and a client on A.
 * `from: 'client'` sends from A to B (destination port = port), `from: 'listener'`
 * sends from B to A (source port = port). Returns what the receiving end measured.
 */
async function transfer(port: number, bytes: number, from: 'client' | 'listener' = 'client'): Promise<{ bytes: number; ms: number }> {
  const ends: End[] = [];
  try {
    const listener = startEnd(b, [from === 'listener' ? 'send' : 'recv', 'listen', ADDR_B, String(port), String(bytes), String(SCRIPT_LIMIT_MS)]);
    ends.push(listener);
    await listener.line(/^listening$/);
    const client = startEnd(a, [from === 'client' ? 'send' : 'recv', 'connect', ADDR_B, String(port), String(bytes), String(SCRIPT_LIMIT_MS)]);
    ends.push(client);
    const receiver = from === 'client' ? listener : client;
    const result = JSON.parse(await receiver.line(/^\{/)) as { bytes?: number; ms?: number; error?: string };
    if (result.error !== undefined || result.bytes === undefined || result.ms === undefined) throw new Error(`transfer failed: ${result.error}`);
    return { bytes: result.bytes, ms: result.ms };
  } finally {
    for (const e of ends) {
      await terminate(e.pid, { graceMs: 200 });
      started.delete(e.pid);
    }
  }
}

/** bytes at the rate, ms. */
const physicsMs = (bytes: number, rate: number) => ((bytes * 8) / rate) * 1000;
/** Largest skb on a veth: TCP hands the qdisc GSO super-packets of up to 64 KiB. */
const MAX_SKB = 64 * 1024;
/**
 * The least time a token bucket allows for `bytes` of payload: a full bucket goes out
 * at once, the last skb may take the bucket into debt (htb and tbf charge a packet
 * after sending it), the rest goes at the rate. Headers only add to it.
 */
const floorMs = (bytes: number, rate: number) => physicsMs(bytes - burstBytes(rate) - MAX_SKB, rate);

/** Both nodes' loss counters once two reads 200 ms apart agree. */
async function settledCounters(): Promise<unknown> {
  let last = JSON.stringify([await lossCounters(a), await lossCounters(b)]);
  for (let i = 0; i < 20; i++) {
    await new Promise((r) => setTimeout(r, 200));
    const now = JSON.stringify([await lossCounters(a), await lossCounters(b)]);
    if (now === last) return JSON.parse(now);
    last = now;
  }
  throw new Error(`loss counters never settled: ${last}`);
}

async function rootQdiscOf(node: LocalNode): Promise<string> {
  return (await node.run(['tc', 'qdisc', 'show', 'dev', 'uplink'])).stdout.split('\n').find((l) => l.includes(' root')) ?? '';
}

async function dropNamespaces() {
  const present = (await run(['ip', 'netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0]);
  for (const ns of [NS_A, NS_B]) if (present.includes(ns)) await run(['ip', 'netns', 'del', ns], { check: false });
}

describe('link conditions on the migration path (tc htb/tbf, nftables)', { timeout: 20_000 }, () => {
  beforeAll(async () => {
    await dropNamespaces(); // leftovers of a run that was killed
    await run(['ip', 'netns', 'add', NS_A]);
    await run(['ip', 'netns', 'add', NS_B]);
    await run(['ip', '-n', NS_A, 'link', 'add', 'uplink', 'type', 'veth', 'peer', 'name', 'uplink', 'netns', NS_B]);
    for (const [ns, addr] of [
      [NS_A, ADDR_A],
      [NS_B, ADDR_B],
    ] as const) {
      await run(['ip', '-n', ns, 'addr', 'add', `${addr}/24`, 'dev', 'uplink']);
      await run(['ip', '-n', ns, 'link', 'set', 'uplink', 'up']);
      await run(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }
  });

  afterEach(async () => {
    await clearLinkConditions(nodes);
  });

  afterAll(async () => {
    for (const pid of started) await terminate(pid, { graceMs: 200 });
    await dropNamespaces();
  });

  it('caps TCP to port 4444 at the rate (physics <= duration <= 1.25x); other ports and ping are not slowed', async () => {
    const applied = await applyLinkConditions(nodes, { rateBitsPerSec: RATE });
    expect(applied).toEqual({
      rateBitsPerSec: RATE,
      devices: ['a:uplink', 'b:uplink'],
      ports: [4444, 10809],
      method: 'htb',
      lossMethod: 'none',
      netem: false,
      burstBytes: 65_536,
    });
    expect(await rootQdiscOf(a)).toMatch(/^qdisc htb 4d4c: root/);

    // A ping every 100 ms while the capped class has a full queue: it takes the direct queue.
    const ping = a.run(['ping', '-n', '-c', '15', '-i', '0.1', '-W', '1', ADDR_B], { check: false, timeoutMs: 10_000 });
    const capped = await transfer(4444, 4 * MiB);
    const pingOut = (await ping).stdout;

    const best = physicsMs(4 * MiB, RATE);
    const eff = efficiency(capped.bytes, capped.ms, RATE);
    console.log(`capped 4444: 4 MiB in ${capped.ms.toFixed(0)} ms (physics ${best.toFixed(0)} ms, ratio ${(capped.ms / best).toFixed(3)}, efficiency ${eff.toFixed(3)})`);
    expect(capped.bytes).toBe(4 * MiB);
    expect(capped.ms).toBeGreaterThanOrEqual(floorMs(4 * MiB, RATE));
    expect(capped.ms).toBeLessThanOrEqual(1.25 * best);
    expect(eff).toBeGreaterThan(0.8);
    expect(eff).toBeLessThanOrEqual(1);

    // The class saw the transfer (at least the payload, plus headers).
    const classStats = (await a.run(['tc', '-s', 'class', 'show', 'dev', 'uplink'])).stdout;
    const sent = Number(/Sent (\d+) bytes/.exec(classStats)?.[1]);
    expect(sent).toBeGreaterThan(4 * MiB);

    const rtts = [...pingOut.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
    console.log(`ping during the capped transfer: ${rtts.length} replies, max ${Math.max(...rtts)} ms`);
    expect(rtts.length).toBeGreaterThanOrEqual(13);
    expect(Math.max(...rtts)).toBeLessThan(20);

    const other = await transfer(5555, 4 * MiB);
    console.log(`uncapped 5555 under the same conditions: ${other.ms.toFixed(1)} ms`);
    expect(other.ms).toBeLessThan(0.25 * best);
  });

  it('caps the other direction too (source port 4444, from the listening side)', async () => {
    await applyLinkConditions(nodes, { rateBitsPerSec: RATE });
    const r = await transfer(4444, 2 * MiB, 'listener');
    const best = physicsMs(2 * MiB, RATE);
    console.log(`capped sport 4444: 2 MiB in ${r.ms.toFixed(0)} ms (physics ${best.toFixed(0)} ms, efficiency ${efficiency(r.bytes, r.ms, RATE).toFixed(3)})`);
    expect(r.bytes).toBe(2 * MiB);
    expect(r.ms).toBeGreaterThanOrEqual(floorMs(2 * MiB, RATE));
    expect(r.ms).toBeLessThanOrEqual(1.25 * best);
  });

  it('caps the whole device with tbf when no ports are given', async () => {
    const applied = await applyLinkConditions(nodes, { rateBitsPerSec: RATE }, { ports: [] });
    expect(applied.method).toBe('tbf');
    expect(await rootQdiscOf(a)).toMatch(/^qdisc tbf 4d4c: root/);
    const r = await transfer(5555, 2 * MiB);
    const best = physicsMs(2 * MiB, RATE);
    console.log(`tbf whole device, 5555: 2 MiB in ${r.ms.toFixed(0)} ms (physics ${best.toFixed(0)} ms, efficiency ${efficiency(r.bytes, r.ms, RATE).toFixed(3)})`);
    expect(r.ms).toBeGreaterThanOrEqual(floorMs(2 * MiB, RATE));
    expect(r.ms).toBeLessThanOrEqual(1.25 * best);
  });

  it('drops 10% on the migration ports under a cap: TCP still completes, the counters show drops, other ports lose nothing', async () => {
    const applied = await applyLinkConditions(nodes, { rateBitsPerSec: RATE, lossPct: 10 });
    expect(applied).toMatchObject({ rateBitsPerSec: RATE, lossPct: 10, method: 'htb', lossMethod: 'nftables' });

    const r = await transfer(4444, 2 * MiB);
    expect(r.bytes).toBe(2 * MiB);
    const atA = (await lossCounters(a))!; // ACKs coming back to the sender
    const atB = (await lossCounters(b))!; // data arriving at the receiver
    console.log(
      `16 Mbit/s + 10% loss: 2 MiB in ${r.ms.toFixed(0)} ms (physics ${physicsMs(2 * MiB, RATE).toFixed(0)} ms, efficiency ${efficiency(r.bytes, r.ms, RATE).toFixed(3)}); ` +
        `data skbs dropped ${atB.droppedPackets}/${atB.seenPackets} (${(atB.seenBytes / atB.seenPackets).toFixed(0)} B/skb), ` +
        `ack skbs dropped ${atA.droppedPackets}/${atA.seenPackets}`,
    );
    // ~130 skbs each dropped with p = 0.1: no drop at all would have p < 1e-5.
    expect(atA.droppedPackets + atB.droppedPackets).toBeGreaterThan(0);
    expect(atB.seenBytes).toBeGreaterThan(2 * MiB);

    // Packets of the closing connection may still be in flight: let the counters settle.
    const before = await settledCounters();
    const other = await transfer(5555, 1 * MiB);
    expect(other.bytes).toBe(MiB);
    expect(await settledCounters()).toEqual(before);
  });

  it('loss without a cap: TCP completes; the share dropped is per skb (GSO super-packets drop whole)', async () => {
    // 10% of whole GSO super-packets can stall TCP in retransmission back-off for
    // seconds: a smaller transfer keeps this test short and still drops enough skbs.
    await applyLinkConditions(nodes, { lossPct: 10 });
    expect(await rootQdiscOf(a)).not.toContain(ROOT_HANDLE);
    const r = await transfer(4444, 2 * MiB);
    expect(r.bytes).toBe(2 * MiB);
    const atA = (await lossCounters(a))!;
    const atB = (await lossCounters(b))!;
    const seen = atA.seenPackets + atB.seenPackets;
    const share = (atA.droppedPackets + atB.droppedPackets) / seen;
    console.log(
      `10% loss, no cap: 2 MiB in ${r.ms.toFixed(0)} ms; data skbs dropped ${atB.droppedPackets}/${atB.seenPackets} ` +
        `(${(atB.seenBytes / atB.seenPackets).toFixed(0)} B/skb), ack skbs ${atA.droppedPackets}/${atA.seenPackets}; overall ${(100 * share).toFixed(1)}%`,
    );
    // Each skb dropped with p = 0.1 (binomial): within 4 sigma of 10% for the n seen.
    const fourSigma = 4 * Math.sqrt((0.1 * 0.9) / seen);
    expect(seen).toBeGreaterThan(30);
    expect(atA.droppedPackets + atB.droppedPackets).toBeGreaterThan(0);
    expect(Math.abs(share - 0.1)).toBeLessThan(fourSigma);
  });

  it('clearLinkConditions restores full speed, removes our qdisc and table, and is idempotent', async () => {
    await applyLinkConditions(nodes, { rateBitsPerSec: RATE, lossPct: 1 });
    expect(await lossCounters(a)).toBeDefined();
    await clearLinkConditions(nodes);
    await clearLinkConditions(nodes); // nothing there: no error
    expect(await rootQdiscOf(a)).not.toContain(ROOT_HANDLE);
    expect(await rootQdiscOf(b)).not.toContain(ROOT_HANDLE);
    expect(await lossCounters(a)).toBeUndefined();
    expect(await lossCounters(b)).toBeUndefined();
    const r = await transfer(4444, 4 * MiB);
    console.log(`after clear, 4444: 4 MiB in ${r.ms.toFixed(1)} ms`);
    expect(r.ms).toBeLessThan(0.25 * physicsMs(4 * MiB, RATE));
  });

  it('applying again replaces the earlier conditions', async () => {
    await applyLinkConditions(nodes, { rateBitsPerSec: RATE, lossPct: 5 });
    const second = await applyLinkConditions(nodes, { rateBitsPerSec: 2 * RATE });
    expect(second.rateBitsPerSec).toBe(2 * RATE);
    expect((await a.run(['tc', 'class', 'show', 'dev', 'uplink'])).stdout).toContain('rate 32Mbit');
    expect(await lossCounters(a)).toBeUndefined();
  });

  it('delay without netem: a clear CONFIG error, and nothing was changed', async () => {
    const has = await netemAvailable(a);
    const cond: LinkConditions = { rateBitsPerSec: RATE, lossPct: 5, delayMs: 20 };
    if (has) {
      // A kernel with netem (most real hosts): the delay goes under the shaped class.
      const applied = await applyLinkConditions(nodes, cond);
      expect(applied.netem).toBe(true);
      expect((await a.run(['tc', 'qdisc', 'show', 'dev', 'uplink'])).stdout).toMatch(/netem 4d4d: parent 4d4c:1 .*delay 20/);
      return;
    }
    // This machine's kernel has no sch_netem (DESIGN.md).
    const err = await applyLinkConditions(nodes, cond).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(MigralabError);
    expect((err as MigralabError).code).toBe('CONFIG');
    expect((err as Error).message).toMatch(/^delay needs the netem qdisc, which this kernel lacks \(tc: .*unknown.*\)/);
    console.log(`delay refused: ${(err as Error).message}`);
    expect(await rootQdiscOf(a)).not.toContain(ROOT_HANDLE);
    expect(await rootQdiscOf(b)).not.toContain(ROOT_HANDLE);
    expect(await lossCounters(a)).toBeUndefined();
    // The probe left nothing on lo either.
    expect((await a.run(['tc', 'qdisc', 'show', 'dev', 'lo'])).stdout).not.toContain('4d4c');
  });

  it('refuses to replace a root qdisc that someone else put there', async () => {
    await b.run(['tc', 'qdisc', 'add', 'dev', 'uplink', 'root', 'handle', '1:', 'tbf', 'rate', '1gbit', 'burst', '1mb', 'latency', '10ms']);
    try {
      await expect(applyLinkConditions(nodes, { rateBitsPerSec: RATE })).rejects.toThrow(/b:uplink already has a root qdisc \(tbf 1:\)/);
      expect(await rootQdiscOf(a)).not.toContain(ROOT_HANDLE); // checked before changing anything
      await clearLinkConditions(nodes);
      expect(await rootQdiscOf(b)).toMatch(/^qdisc tbf 1: root/); // not ours: left alone
    } finally {
      await b.run(['tc', 'qdisc', 'del', 'dev', 'uplink', 'root']);
    }
  });
});
