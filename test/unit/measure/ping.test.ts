import { describe, it, expect } from 'vitest';
import { parsePingLine, summarize, type PingLine, type PingReply } from '../../../lab/measure/ping.ts';

/** What `ping -D -n -O -i 0.01` printed across a short blackout (shape copied from real runs). */
const blackout = `PING 10.254.0.10 (10.254.0.10) 56(84) bytes of data.
[1795801063.764625] 64 bytes from 10.254.0.10: icmp_seq=1 ttl=64 time=0.300 ms
[1795801063.774219] 64 bytes from 10.254.0.10: icmp_seq=2 ttl=64 time=0.043 ms
[1795801063.784268] 64 bytes from 10.254.0.10: icmp_seq=3 ttl=64 time=0.044 ms
[1795801063.794268] no answer yet for icmp_seq=3
[1795801063.804100] no answer yet for icmp_seq=4
[1795801063.814150] no answer yet for icmp_seq=5
[1795801063.824100] no answer yet for icmp_seq=6
[1795801063.834001] 64 bytes from 10.254.0.10: icmp_seq=7 ttl=64 time=1.250 ms
[1795801063.834020] 64 bytes from 10.254.0.10: icmp_seq=7 ttl=64 time=1.269 ms (DUP!)
[1795801063.844219] 64 bytes from 10.254.0.10: icmp_seq=8 ttl=64 time=0.051 ms

--- 10.254.0.10 ping statistics ---
8 packets transmitted, 4 received, +1 duplicates, 50% packet loss, time 71ms
rtt min/avg/max/mdev = 0.043/0.326/1.269/0.467 ms, pipe 2
`;

const parseAll = (text: string) => text.split('\n').map(parsePingLine).filter((l): l is PingLine => l !== undefined);
const repliesOf = (lines: PingLine[]) => lines.filter((l): l is PingReply => l.kind === 'reply');

describe('parsePingLine', () => {
  it('reads a -D reply line, keeping the timestamp exact in microseconds', () => {
    expect(parsePingLine('[1732700000.123456] 64 bytes from 10.1.2.3: icmp_seq=5 ttl=64 time=0.123 ms')).toEqual({
      kind: 'reply',
      epochMs: 1732700000123.456,
      epochUs: 1732700000123456,
      from: '10.1.2.3',
      bytes: 64,
      seq: 5,
      ttl: 64,
      rttMs: 0.123,
      dup: false,
    });
  });

  it('reads large round-trip times, which ping prints with fewer decimals', () => {
    expect(parsePingLine('[1795801063.764625] 64 bytes from 10.0.0.2: icmp_seq=9 ttl=63 time=1021 ms')).toMatchObject({ rttMs: 1021, ttl: 63 });
    expect(parsePingLine('[1795801063.764625] 64 bytes from 10.0.0.2: icmp_seq=9 ttl=63 time=12.5 ms')).toMatchObject({ rttMs: 12.5 });
  });

  it('reads IPv6 sources and the name (address) form without -n', () => {
    expect(parsePingLine('[1795801063.000001] 64 bytes from ::1: icmp_seq=1 ttl=64 time=0.030 ms')).toMatchObject({ from: '::1', seq: 1, epochUs: 1795801063000001 });
    expect(parsePingLine('[1795801063.000001] 64 bytes from localhost (127.0.0.1): icmp_seq=2 ttl=64 time=0.030 ms')).toMatchObject({ from: '127.0.0.1', seq: 2 });
  });

  it('flags duplicates', () => {
    expect(parsePingLine('[1795801063.834020] 64 bytes from 10.254.0.10: icmp_seq=7 ttl=64 time=1.269 ms (DUP!)')).toMatchObject({ seq: 7, dup: true });
  });

  it('reads -O "no answer yet" lines', () => {
    expect(parsePingLine('[1795801071.657172] no answer yet for icmp_seq=1')).toEqual({ kind: 'no-answer', epochMs: 1795801071657.172, epochUs: 1795801071657172, seq: 1 });
  });

  it('reads ICMP errors and ping diagnostics', () => {
    expect(parsePingLine('[1795801075.737481] From 10.254.78.1 icmp_seq=1 Destination Host Unreachable')).toEqual({
      kind: 'error',
      epochMs: 1795801075737.481,
      epochUs: 1795801075737481,
      from: '10.254.78.1',
      seq: 1,
      message: 'Destination Host Unreachable',
    });
    expect(parsePingLine('From 10.0.0.1 icmp_seq=4 Time to live exceeded')).toMatchObject({ kind: 'error', from: '10.0.0.1', seq: 4, epochMs: undefined });
    expect(parsePingLine('ping: sendmsg: Network is unreachable')).toMatchObject({ kind: 'error', message: 'sendmsg: Network is unreachable', seq: undefined });
  });

  it('reads the summary lines in all their variants', () => {
    expect(parsePingLine('19 packets transmitted, 19 received, 0% packet loss, time 285ms')).toEqual({
      kind: 'transmitted', transmitted: 19, received: 19, duplicates: 0, corrupted: 0, errors: 0, lossPercent: 0, timeMs: 285,
    });
    expect(parsePingLine('10 packets transmitted, 0 received, +6 errors, 100% packet loss, time 4615ms')).toMatchObject({ transmitted: 10, received: 0, errors: 6, lossPercent: 100 });
    expect(parsePingLine('4 packets transmitted, 4 received, +4 duplicates, 0% packet loss, time 962ms')).toMatchObject({ duplicates: 4 });
    expect(parsePingLine('3 packets transmitted, 2 received, 33.3333% packet loss, time 2003ms')).toMatchObject({ lossPercent: 33.3333 });
    expect(parsePingLine('rtt min/avg/max/mdev = 0.037/0.056/0.300/0.057 ms')).toEqual({ kind: 'rtt', minMs: 0.037, avgMs: 0.056, maxMs: 0.3, mdevMs: 0.057, pipe: undefined });
    expect(parsePingLine('rtt min/avg/max/mdev = 0.043/0.326/1.269/0.467 ms, pipe 2')).toMatchObject({ pipe: 2 });
    expect(parsePingLine('pipe 7')).toEqual({ kind: 'pipe', pipe: 7 });
  });

  it('reads the header and skips what carries nothing', () => {
    expect(parsePingLine('PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.')).toEqual({ kind: 'header', target: '127.0.0.1', address: '127.0.0.1' });
    expect(parsePingLine('')).toBeUndefined();
    expect(parsePingLine('--- 127.0.0.1 ping statistics ---')).toBeUndefined();
    // a reply without -D has no time to place it on the timeline
    expect(parsePingLine('64 bytes from 10.1.2.3: icmp_seq=5 ttl=64 time=0.123 ms')).toBeUndefined();
  });

  it('parses a whole blackout transcript', () => {
    const lines = parseAll(blackout);
    expect(lines.map((l) => l.kind)).toEqual([
      'header', 'reply', 'reply', 'reply', 'no-answer', 'no-answer', 'no-answer', 'no-answer', 'reply', 'reply', 'reply', 'transmitted', 'rtt',
    ]);
    expect(repliesOf(lines).map((r) => r.seq)).toEqual([1, 2, 3, 7, 7, 8]);
  });
});

describe('summarize', () => {
  it('finds the blackout: largest gap between consecutive replies, unrounded, with its edges', () => {
    const s = summarize(repliesOf(parseAll(blackout)), { intervalMs: 10, sent: 8 });
    expect(s).toEqual({
      intervalMs: 10,
      sent: 8,
      received: 5, // seq 7 counted once
      lost: 3,
      maxGapMs: 49.733, // 063.834001 - 063.784268
      maxGapStartMs: 1795801063784.268,
      maxGapEndMs: 1795801063834.001,
      maxRttMs: 1.25, // the duplicate's rtt does not count
      medianGapMs: expect.closeTo(10.1335, 9), // gaps 9.594, 10.049, 49.733, 10.218
    });
  });

  it('computes gaps from epochMs when there are no microsecond stamps', () => {
    const replies = [0, 10, 20, 95.5, 105.5].map((t, i) => ({ epochMs: 1_000_000 + t, seq: i + 1 }));
    const s = summarize(replies, { intervalMs: 10, sent: 12 });
    expect(s.maxGapMs).toBe(75.5);
    expect(s.maxGapStartMs).toBe(1_000_020);
    expect(s.maxGapEndMs).toBe(1_000_095.5);
    expect(s.received).toBe(5);
    expect(s.lost).toBe(7);
    expect(s.maxRttMs).toBeUndefined();
    expect(s.medianGapMs).toBe(10);
  });

  it('orders replies by time before measuring', () => {
    const s = summarize([{ epochMs: 30, seq: 3 }, { epochMs: 0, seq: 1 }, { epochMs: 10, seq: 2 }], { intervalMs: 10, sent: 3 });
    expect(s.maxGapMs).toBe(20);
    expect(s.maxGapStartMs).toBe(10);
  });

  it('counts a duplicate once even after icmp_seq wrapped', () => {
    const seqs = [65534, 65535, 0, 0, 1];
    const replies = seqs.map((seq, i) => ({ epochMs: i * 10, seq }));
    expect(summarize(replies, { intervalMs: 10, sent: 4 })).toMatchObject({ received: 4, lost: 0 });
    // the same number 65536 packets later is a new packet...
    expect(summarize([{ epochMs: 0, seq: 5 }, { epochMs: 10, seq: 6 }, { epochMs: 655_370, seq: 5 }], { intervalMs: 10, sent: 65538 }).received).toBe(3);
    // ...also after a silence longer than half the sequence space; its duplicate is not
    const late = [{ epochMs: 0, seq: 5 }, { epochMs: 400_000, seq: 40005 }, { epochMs: 400_000.02, seq: 40005 }];
    expect(summarize(late, { intervalMs: 10, sent: 40005 }).received).toBe(2);
    expect(summarize(late, { intervalMs: 10, sent: 40005 }).maxGapMs).toBe(400_000);
  });

  it('has no gap with fewer than two replies', () => {
    expect(summarize([], { intervalMs: 10, sent: 5 })).toMatchObject({ received: 0, lost: 5, maxGapMs: undefined, maxGapStartMs: undefined, maxGapEndMs: undefined });
    expect(summarize([{ epochMs: 5, seq: 1 }], { intervalMs: 10, sent: 1 }).maxGapMs).toBeUndefined();
  });

  describe('with a window', () => {
    // replies every 10 ms, then a 300 ms hole (ms 40 to 340), then every 10 ms again
    const t0 = 1_795_801_000_000;
    const times = [0, 10, 20, 30, 40, 340, 350, 360, 370];
    const replies = times.map((t, i) => ({ epochMs: t0 + t, seq: i + 1 }));

    it('counts a gap that overlaps the window, even if it began before it', () => {
      const s = summarize(replies, { intervalMs: 10, sent: 37, windowStartMs: t0 + 100, windowEndMs: t0 + 200 });
      expect(s.maxGapMs).toBe(300);
      expect(s.maxGapStartMs).toBe(t0 + 40);
      expect(s.maxGapEndMs).toBe(t0 + 340);
    });

    it('ignores gaps outside the window', () => {
      const s = summarize(replies, { intervalMs: 10, sent: 37, windowStartMs: t0 + 345, windowEndMs: t0 + 370 });
      expect(s.maxGapMs).toBe(10);
      expect(s.received).toBe(9); // counts are not windowed
    });

    it('bounds the gap with the window edge when nothing answered after it', () => {
      const s = summarize(replies.slice(0, 5), { intervalMs: 10, sent: 37, windowStartMs: t0 + 20, windowEndMs: t0 + 500 });
      expect(s.maxGapMs).toBe(460);
      expect(s.maxGapStartMs).toBe(t0 + 40);
      expect(s.maxGapEndMs).toBe(t0 + 500);
    });

    it('bounds the gap with the window start when nothing answered before it', () => {
      const s = summarize(replies.slice(5), { intervalMs: 10, sent: 37, windowStartMs: t0 + 100, windowEndMs: t0 + 360 });
      expect(s.maxGapMs).toBe(240);
      expect(s.maxGapStartMs).toBe(t0 + 100);
    });

    it('reports the whole window when nothing answered at all', () => {
      const s = summarize([], { intervalMs: 10, sent: 20, windowStartMs: t0, windowEndMs: t0 + 200.25 });
      expect(s).toMatchObject({ received: 0, lost: 20, maxGapMs: 200.25, maxGapStartMs: t0, maxGapEndMs: t0 + 200.25 });
    });
  });
});
