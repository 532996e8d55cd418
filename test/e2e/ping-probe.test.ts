import { describe, it, expect } from 'vitest';
import { existsSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import { PingProbe, summarize } from '../../lab/measure/ping.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** True while the PID is a live (not zombie) process. */
function alive(pid: number): boolean {
  if (!existsSync(`/proc/${pid}`)) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('PingProbe on 127.0.0.1', () => {
  it('pings every 10 ms: sent ≈ received, largest gap near the interval, summary from ping', async () => {
    const probe = PingProbe.start({ prefix: [], target: '127.0.0.1', intervalMs: 10 });
    const pid = probe.pid!;
    expect(pid).toBeGreaterThan(0);
    const t0 = Date.now();
    const first = await probe.waitForReply(2000);
    expect(first.seq).toBe(1);
    expect(first.from).toBe('127.0.0.1');
    // -D stamps use the same clock as Date.now()
    expect(Math.abs(first.epochMs - t0)).toBeLessThan(1000);
    await sleep(500);
    const mid = Date.now();
    await sleep(100);
    expect(probe.repliesSince(mid).length).toBeGreaterThan(3);
    expect(probe.repliesSince(mid).every((r) => r.epochMs >= mid)).toBe(true);

    const res = await probe.stop();
    expect(alive(pid)).toBe(false);
    expect(res.sentFrom).toBe('ping');
    expect(res.transmitted).toBeDefined();
    expect(res.rtt).toBeDefined();
    expect(res.exitCode).toBe(0);
    expect(res.argv).toEqual(['ping', '-D', '-n', '-O', '-i', '0.01', '127.0.0.1']);
    const s = res.summary;
    expect(s.sent).toBe(res.transmitted!.transmitted);
    expect(s.sent).toBeGreaterThanOrEqual(30); // ~600 ms at 10 ms, TCG-busy hosts are slower
    expect(s.received).toBe(res.transmitted!.received);
    expect(s.lost).toBeLessThanOrEqual(1); // the packet in flight at SIGINT, at most
    expect(s.maxGapMs).toBeGreaterThanOrEqual(9);
    expect(s.maxGapMs).toBeLessThan(150);
    expect(s.maxGapEndMs! - s.maxGapStartMs!).toBeCloseTo(s.maxGapMs!, 3);
    expect(s.maxRttMs).toBeLessThan(50);
    // a second stop returns the same result
    expect(await probe.stop()).toBe(res);
  });

  it('pings every 1 ms', async () => {
    const probe = PingProbe.start({ prefix: [], target: '127.0.0.1', intervalMs: 1 });
    await probe.waitForReply(2000);
    await sleep(500);
    const res = await probe.stop();
    expect(res.argv).toContain('0.001');
    expect(res.sentFrom).toBe('ping');
    expect(res.summary.sent).toBeGreaterThan(100);
    expect(res.summary.lost).toBeLessThanOrEqual(1);
    expect(res.summary.maxGapMs).toBeGreaterThan(0.5);
    expect(res.summary.maxGapMs).toBeLessThan(100);
  });

  it('runs ping behind a prefix command and kills only its own process', async () => {
    // nsenter into our own network namespace: it execs ping, so our PID is ping's
    const prefix = ['nsenter', `--net=/proc/${process.pid}/ns/net`, '--'];
    const probe = PingProbe.start({ prefix, target: '127.0.0.1', intervalMs: 10 });
    await probe.waitForReply(2000);
    const comm = readFileSync(`/proc/${probe.pid}/comm`, 'utf8').trim();
    expect(comm).toBe('ping');
    const res = await probe.stop();
    expect(res.sentFrom).toBe('ping');
    expect(res.summary.received).toBeGreaterThan(0);
  });

  it('a disposed probe leaves no ping behind', async () => {
    let pid: number;
    {
      await using probe = PingProbe.start({ prefix: [], target: '127.0.0.1', intervalMs: 10 });
      pid = probe.pid!;
      await probe.waitForReply(2000);
      expect(alive(pid)).toBe(true);
    }
    expect(alive(pid)).toBe(false);
  });

  it('stop() right after start still ends ping and returns its summary', async () => {
    const probe = PingProbe.start({ prefix: [], target: '127.0.0.1', intervalMs: 10 });
    const pid = probe.pid!;
    const res = await probe.stop();
    expect(alive(pid)).toBe(false);
    expect(res.sentFrom).toBe('ping');
    expect(res.summary.sent).toBeGreaterThanOrEqual(1);
  });

  it('waitForReply fails clearly when ping cannot run or gets no answer', async () => {
    const bad = PingProbe.start({ prefix: [], target: 'no-such-host.invalid', intervalMs: 10 });
    await expect(bad.waitForReply(5000)).rejects.toThrow(/ping no-such-host\.invalid exited before any reply \(exit 2: ping: no-such-host\.invalid: /);
    const res = await bad.stop();
    expect(res.exitCode).toBe(2);
    expect(res.summary.sent).toBe(0);

    const missing = PingProbe.start({ prefix: ['/nonexistent/prefix'], target: '127.0.0.1', intervalMs: 10 });
    await expect(missing.waitForReply(5000)).rejects.toThrow(/program not found/);
    await missing.stop();

    const probe = PingProbe.start({ prefix: [], target: '127.0.0.1', intervalMs: 10 });
    await probe.waitForReply(2000);
    await expect(probe.waitForReply(100, { sinceMs: Date.now() + 60_000 })).rejects.toThrow(/no ping reply from 127\.0\.0\.1 within 100 ms/);
    await probe.stop();
  });

  it('measures a real outage: loopback of a private namespace down for ~300 ms', async () => {
    const ns = `mlab-pingtest-${process.pid}`;
    await execa('ip', ['netns', 'add', ns]);
    try {
      await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      // ip netns exec execs ping too
      await using probe = PingProbe.start({ prefix: ['ip', 'netns', 'exec', ns], target: '127.0.0.1', intervalMs: 5 });
      await probe.waitForReply(2000);
      await sleep(200);
      // The outage lasts at least from when `down` returned until `up` was started, and at
      // most from before `down` started until `up` returned (each ip command takes a while).
      const downAt = Date.now();
      await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'down']);
      const downDone = Date.now();
      await sleep(300);
      const upStart = Date.now();
      await execa('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
      const upAt = Date.now();
      await probe.waitForReply(2000, { sinceMs: upAt });
      await sleep(200);
      const res = await probe.stop();

      const s = res.summary;
      expect(s.maxGapMs).toBeGreaterThanOrEqual(upStart - downDone - 10);
      expect(s.maxGapMs).toBeLessThan(upAt - downAt + 200);
      expect(s.maxGapStartMs).toBeLessThanOrEqual(downAt + 20);
      expect(s.maxGapEndMs).toBeGreaterThanOrEqual(upAt - 20);
      // while nothing answers, ping sends only every ~10 ms whatever -i says: fewer losses
      expect(s.lost).toBeGreaterThanOrEqual(10);
      expect(s.lost).toBe(res.transmitted!.transmitted - res.transmitted!.received);
      expect(res.noAnswer.length).toBeGreaterThanOrEqual(10);
      expect(s.medianGapMs).toBeGreaterThan(4);
      expect(s.medianGapMs).toBeLessThan(10);
      // the same outage seen through a window around it
      const w = summarize(res.replies, { intervalMs: 5, sent: s.sent, windowStartMs: downAt, windowEndMs: upAt });
      expect(w.maxGapMs).toBe(s.maxGapMs);
      // and a window well after it sees only the normal cadence
      const after = summarize(res.replies, { intervalMs: 5, sent: s.sent, windowStartMs: upAt + 50, windowEndMs: upAt + 150 });
      expect(after.maxGapMs).toBeLessThan(60);
    } finally {
      await execa('ip', ['netns', 'del', ns], { reject: false });
    }
  }, 15_000);

  it('refuses intervals below 1 ms', () => {
    expect(() => PingProbe.start({ prefix: [], target: '127.0.0.1', intervalMs: 0.5 })).toThrow(/at least 1 ms/);
  });
});
