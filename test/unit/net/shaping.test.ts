import { describe, it, expect } from 'vitest';
import { parseRate } from '../../../lab/config/size.ts';
import {
  efficiency,
  burstBytes,
  netemLimit,
  netemArgv,
  tcApplyArgv,
  tcClearArgv,
  nftLossRuleset,
  nftClearRuleset,
  parseRootQdisc,
  parseLossCounters,
  checkConditions,
  MIGRATION_PORTS,
} from '../../../lab/net/shaping.ts';
import { MigralabError } from '../../../lab/errors.ts';

describe('parseRate', () => {
  it('reads bit rates with SI and binary prefixes', () => {
    expect(parseRate('100Mbit')).toBe(100_000_000);
    expect(parseRate('1Gbit')).toBe(1_000_000_000);
    expect(parseRate('500kbit')).toBe(500_000);
    expect(parseRate('16mbit')).toBe(16_000_000);
    expect(parseRate('10 Mbit/s')).toBe(10_000_000);
    expect(parseRate('10Mb/s')).toBe(10_000_000);
    expect(parseRate('1.5Mbit')).toBe(1_500_000);
    expect(parseRate('1Mibit')).toBe(1_048_576);
    expect(parseRate('8000')).toBe(8000);
  });
  it('reads byte rates only with a capital B and /s', () => {
    expect(parseRate('12MiB/s')).toBe(12 * 1_048_576 * 8);
    expect(parseRate('5MB/s')).toBe(40_000_000);
    expect(parseRate('1KiB/s')).toBe(8192);
  });
  it('refuses what it cannot read without guessing', () => {
    for (const bad of ['', 'fast', '100', '-5Mbit', '0bit', '10Mbps', '10MBps', '10bps', '10M', '10Xbit', '12MiB', 'Mbit', '1e9bit', '10Mbit extra'])
      expect(parseRate(bad), bad).toBe(bad === '100' ? 100 : undefined);
  });
});

describe('efficiency', () => {
  it('is bytes*8 / (seconds * rate)', () => {
    // 4 MiB at 16 Mbit/s takes 2.097152 s at best.
    expect(efficiency(4 * 1024 * 1024, 2097.152, 16_000_000)).toBeCloseTo(1, 12);
    expect(efficiency(4 * 1024 * 1024, 2621.44, 16_000_000)).toBeCloseTo(0.8, 12);
    expect(efficiency(1_000_000, 1000, 16_000_000)).toBe(0.5);
    expect(efficiency(0, 1000, 1e6)).toBe(0);
  });
  it('is NaN, not a made-up number, without a duration or a rate', () => {
    expect(efficiency(1000, 0, 1e6)).toBeNaN();
    expect(efficiency(1000, 100, 0)).toBeNaN();
    expect(efficiency(1000, Number.NaN, 1e6)).toBeNaN();
  });
});

describe('burst and netem limit', () => {
  it('keeps a 64 KiB floor and 5 ms of the rate above it', () => {
    expect(burstBytes(16_000_000)).toBe(65_536);
    expect(burstBytes(1_000_000_000)).toBe(625_000);
  });
  it('sizes netem to twice the bandwidth-delay product, within bounds', () => {
    expect(netemLimit(16_000_000, 10)).toBe(1000 + 27);
    expect(netemLimit(1_000_000_000, 100)).toBe(1000 + 16_667);
    expect(netemLimit(undefined, 1000)).toBe(100_000);
  });
});

describe('tc argv', () => {
  const filters = (dev: string, ports: number[]) =>
    (['ip', 'ipv6'] as const).flatMap((proto) =>
      ports.flatMap((port) =>
        ['dport', 'sport'].map((dir) => [
          'tc', 'filter', 'add', 'dev', dev, 'parent', '4d4c:', 'protocol', proto, 'prio', proto === 'ip' ? '1' : '2',
          'u32', 'match', proto === 'ip' ? 'ip' : 'ip6', 'protocol', '6', '0xff', 'match', proto === 'ip' ? 'ip' : 'ip6', dir, String(port), '0xffff',
          'flowid', '4d4c:1',
        ]),
      ),
    );

  it('caps only the migration ports with htb; the rest takes the unshaped direct queue', () => {
    const argv = tcApplyArgv('uplink', { rateBitsPerSec: 16_000_000 }, MIGRATION_PORTS);
    expect(argv).toEqual([
      ['tc', 'qdisc', 'add', 'dev', 'uplink', 'root', 'handle', '4d4c:', 'htb', 'default', '0', 'direct_qlen', '1000'],
      ['tc', 'class', 'add', 'dev', 'uplink', 'parent', '4d4c:', 'classid', '4d4c:1', 'htb', 'rate', '16000000bit', 'ceil', '16000000bit',
        'burst', '65536', 'cburst', '65536', 'quantum', '65536'],
      ['tc', 'qdisc', 'add', 'dev', 'uplink', 'parent', '4d4c:1', 'handle', '4d4d:', 'pfifo', 'limit', '1000'],
      ...filters('uplink', [4444, 10809]),
    ]);
    // 2 ports x 2 directions x IPv4/IPv6
    expect(argv.filter((a) => a[1] === 'filter')).toHaveLength(8);
  });

  it('puts netem under the shaped class when delay is asked for', () => {
    const argv = tcApplyArgv('uplink', { rateBitsPerSec: 16_000_000, delayMs: 10 }, [4444]);
    expect(argv[2]).toEqual(['tc', 'qdisc', 'add', 'dev', 'uplink', 'parent', '4d4c:1', 'handle', '4d4d:', 'netem', 'delay', '10ms', 'limit', '1027']);
    expect(argv.slice(3)).toEqual(filters('uplink', [4444]));
  });

  it('delay alone on ports: an htb class that does not cap, netem under it', () => {
    const argv = tcApplyArgv('uplink', { delayMs: 2.5 }, [4444]);
    expect(argv[1]).toContain('100000000000bit');
    // 100 Gbit/s x 2.5 ms x 2 / 1500 B = 41667 packets, + 1000
    expect(argv[2]).toEqual(netemArgv('uplink', '4d4c:1', 2.5, 42_667));
    expect(argv[2]).toContain('2.5ms');
  });

  it('caps the whole device with tbf when no ports are given', () => {
    expect(tcApplyArgv('eth1', { rateBitsPerSec: 1_000_000_000 }, [])).toEqual([
      ['tc', 'qdisc', 'add', 'dev', 'eth1', 'root', 'handle', '4d4c:', 'tbf', 'rate', '1000000000bit', 'burst', '625000', 'latency', '100ms'],
    ]);
    expect(tcApplyArgv('eth1', { rateBitsPerSec: 8_000_000, delayMs: 20 }, [])).toEqual([
      ['tc', 'qdisc', 'add', 'dev', 'eth1', 'root', 'handle', '4d4c:', 'tbf', 'rate', '8000000bit', 'burst', '65536', 'latency', '100ms'],
      ['tc', 'qdisc', 'add', 'dev', 'eth1', 'parent', '4d4c:1', 'handle', '4d4d:', 'netem', 'delay', '20ms', 'limit', '1027'],
    ]);
    expect(tcApplyArgv('eth1', { delayMs: 20 }, [])).toEqual([
      ['tc', 'qdisc', 'add', 'dev', 'eth1', 'root', 'handle', '4d4c:', 'netem', 'delay', '20ms', 'limit', '100000'],
    ]);
  });

  it('does nothing for loss alone or no conditions, and clears only our handle', () => {
    expect(tcApplyArgv('uplink', {}, MIGRATION_PORTS)).toEqual([]);
    expect(tcApplyArgv('uplink', { delayMs: 0 }, MIGRATION_PORTS)).toEqual([]);
    expect(tcClearArgv('uplink')).toEqual(['tc', 'qdisc', 'del', 'dev', 'uplink', 'root', 'handle', '4d4c:']);
  });
});

describe('nftables ruleset', () => {
  it('drops N/10000 of the packets to or from the ports on input, with counters, replacing our table atomically', () => {
    expect(nftLossRuleset(10, [4444, 10809])).toBe(
      [
        'add table inet migralab',
        'delete table inet migralab',
        'table inet migralab {',
        '  chain input {',
        '    type filter hook input priority 0; policy accept;',
        '    tcp dport { 4444, 10809 } counter numgen random mod 10000 < 1000 counter drop',
        '    tcp sport { 4444, 10809 } counter numgen random mod 10000 < 1000 counter drop',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
    expect(nftLossRuleset(0.25, [4444])).toContain('tcp dport { 4444 } counter numgen random mod 10000 < 25 counter drop');
    expect(nftLossRuleset(100, [])).toContain('    meta l4proto tcp counter numgen random mod 10000 < 10000 counter drop\n');
  });
  it('clears with add+delete so that nothing there is not an error', () => {
    expect(nftClearRuleset()).toBe('add table inet migralab\ndelete table inet migralab\n');
  });
  it('sums what the loss rules saw (first counter) and dropped (second)', () => {
    const rule = (seen: [number, number], dropped: [number, number]) => ({
      rule: {
        expr: [
          { match: {} },
          { counter: { packets: seen[0], bytes: seen[1] } },
          { match: { left: { numgen: {} } } },
          { counter: { packets: dropped[0], bytes: dropped[1] } },
          { drop: null },
        ],
      },
    });
    const json = JSON.stringify({
      nftables: [
        { metainfo: { version: '1.0.6' } },
        { table: { family: 'inet', name: 'migralab' } },
        rule([100, 150_000], [9, 13_500]),
        rule([50, 2600], [6, 312]),
        { rule: { expr: [{ counter: { packets: 99, bytes: 99 } }, { accept: null }] } },
      ],
    });
    expect(parseLossCounters(json)).toEqual({ seenPackets: 150, seenBytes: 152_600, droppedPackets: 15, droppedBytes: 13_812 });
  });
});

describe('reading tc state', () => {
  it('finds the root qdisc in tc -j output', () => {
    expect(
      parseRootQdisc('[{"kind":"htb","handle":"4d4c:","root":true,"refcnt":3},{"kind":"pfifo","handle":"4d4d:","parent":"4d4c:1"}]'),
    ).toEqual({ kind: 'htb', handle: '4d4c:' });
    expect(parseRootQdisc('[{"kind":"noqueue","handle":"0:","root":true}]')).toEqual({ kind: 'noqueue', handle: '0:' });
    expect(parseRootQdisc('[]')).toBeUndefined();
    expect(parseRootQdisc('')).toBeUndefined();
  });
});

describe('checking conditions', () => {
  it('normalises and defaults', () => {
    expect(checkConditions({ rateBitsPerSec: 16e6 + 0.4, lossPct: 0, delayMs: 0 })).toEqual({
      cond: { rateBitsPerSec: 16_000_000 },
      device: 'uplink',
      ports: [4444, 10809],
    });
    expect(checkConditions({ lossPct: 2.5 }, { device: 'eth1', ports: [4444, 4444] })).toEqual({ cond: { lossPct: 2.5 }, device: 'eth1', ports: [4444] });
  });
  it('refuses bad values with a CONFIG error naming them', () => {
    const cases: [Parameters<typeof checkConditions>[0], Parameters<typeof checkConditions>[1], RegExp][] = [
      [{ rateBitsPerSec: 0 }, {}, /rate must be a positive number.*got 0/],
      [{ rateBitsPerSec: Number.POSITIVE_INFINITY }, {}, /rate/],
      [{ lossPct: 101 }, {}, /loss must be a percentage in 0\.\.100 \(got 101\)/],
      [{ lossPct: 0.001 }, {}, /below the 0\.01% resolution/],
      [{ delayMs: -1 }, {}, /delay must be/],
      [{}, { ports: [0] }, /port 0 is not a TCP port/],
      [{}, { device: 'a b' }, /not a network device name/],
    ];
    for (const [cond, opts, re] of cases) {
      let err: unknown;
      try {
        checkConditions(cond, opts);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(MigralabError);
      expect((err as MigralabError).code).toBe('CONFIG');
      expect((err as Error).message).toMatch(re);
    }
  });
});
