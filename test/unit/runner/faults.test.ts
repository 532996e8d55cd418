import { describe, it, expect } from 'vitest';
import { parseConfig } from '../../../lab/config/load.ts';
import { scenarioSchema } from '../../../lab/config/scenario.ts';
import { ConfigError } from '../../../lab/errors.ts';
import { expandCells } from '../../../lab/runner/matrix.ts';
import { expectedOutcome } from '../../../lab/runner/faults.ts';
import { Watchdog, STALL_PROBE_MS, type Finding } from '../../../lab/migrate/watchdog.ts';

const load = (text: string) => parseConfig('s.yaml', text, scenarioSchema);
const issuesOf = (text: string) => {
  try {
    load(text);
  } catch (e) {
    return (e as ConfigError).issues.map((i) => `${i.line}:${i.col} ${i.field}: ${i.expected}`);
  }
  return [];
};

describe('faults in scenario files', () => {
  it('each fault is a cell of its own beside the fault-free ones, for the strategies it applies to', () => {
    const s = load(`name: f
faults:
  - { kind: kill-destination }
  - { kind: cut-link, afterMs: 500 }
  - { kind: kill-nfs-server, during: ram }
  - { kind: fill-destination-disk, during: mirror }
`);
    expect(s.faults[0]).toEqual({ kind: 'kill-destination', during: 'ram' });
    expect(s.faults[1]).toEqual({ kind: 'cut-link', afterMs: 500, forMs: 8000 });
    expect(expandCells(s).map((c) => c.label)).toEqual([
      'block',
      'shared',
      'block, fault=kill-destination@ram',
      'shared, fault=kill-destination@ram',
      'block, fault=cut-link@afterMs=500,forMs=8000',
      'shared, fault=cut-link@afterMs=500,forMs=8000',
      'shared, fault=kill-nfs-server@ram',
      'block, fault=fill-destination-disk@mirror',
    ]);
    expect(expandCells(s)[2]!.fault).toEqual(s.faults[0]);
  });

  it('refuses faults that cannot happen, at their lines', () => {
    expect(issuesOf('name: x\nfaults:\n  - { kind: melt-cpu }\n')).toEqual([expect.stringMatching(/^3:13 faults\[0\]\.kind: expected one of kill-destination, /)]);
    expect(issuesOf('name: x\nfaults:\n  - { kind: cut-link, during: ram, afterMs: 5 }\n')).toEqual(['3:45 faults[0].afterMs: expected either during or afterMs, not both']);
    expect(issuesOf('name: x\nfaults:\n  - { kind: kill-destination, forMs: 5 }\n')).toEqual(['3:38 faults[0].forMs: expected forMs only with kind cut-link']);
    expect(issuesOf('name: x\nstrategies: [shared]\nfaults:\n  - { kind: kill-destination, during: mirror }\n')).toEqual([expect.stringMatching(/^4:39 faults\[0\]\.during: expected a fault that applies to strategies shared: kill-destination during mirror needs block/)]);
    expect(issuesOf('name: x\nstrategies: [block]\nfaults:\n  - { kind: kill-nfs-server }\n')).toEqual([expect.stringMatching(/^4:13 faults\[0\]\.kind: expected a fault that applies to strategies block: kill-nfs-server needs shared/)]);
    expect(issuesOf('name: x\nfaults:\n  - { kind: fill-destination-disk, during: ram }\n')).toEqual(['3:44 faults[0].during: expected during: mirror (the disk fills while it is copied)']);
    expect(issuesOf('name: x\ntimeoutSeconds: 1\nfaults:\n  - { kind: cut-link, afterMs: 1000 }\n')).toEqual(['4:32 faults[0].afterMs: expected less than timeoutSeconds (1000 ms)']);
    expect(issuesOf('name: x\nfaults:\n  - { kind: kill-destination }\n  - { kind: kill-destination, during: ram }\n')).toEqual(['4:5 faults[1]: this fault is listed twice']);
    expect(issuesOf('name: x\ndrivers: [libvirt]\nfaults:\n  - { kind: kill-destination }\n')).toEqual([expect.stringMatching(/^4:3 faults: expected drivers: \[qemu\] with faults/)]);
  });

  it('a cut link shorter than the stall limit is expected to be ridden out; every other fault to leave the guest on the source', () => {
    expect(expectedOutcome({ kind: 'cut-link', during: 'ram', forMs: 8000 }, 20_000)).toBe('completes');
    expect(expectedOutcome({ kind: 'cut-link', during: 'ram', forMs: 30_000 }, 20_000)).toBe('stays-on-source');
    expect(expectedOutcome({ kind: 'stop-destination', during: 'ram' }, 20_000)).toBe('stays-on-source');
  });
});

describe('the migration watchdog', () => {
  function setup(findings: (Finding | undefined)[], stallMs?: number) {
    let now = 0;
    let looks = 0;
    const w = new Watchdog(async () => findings[Math.min(looks++, findings.length - 1)], stallMs, () => now);
    w.arm({ ticking: false }); // the test drives tick() itself
    let failure: unknown;
    w.failed.catch((e) => (failure = e));
    return { w, advance: (ms: number) => (now += ms), looks: () => looks, failure: async () => (await Promise.resolve(), failure) };
  }
  const died: Finding = { kind: 'destination-died', fatal: true, message: 'gone' };
  const down: Finding = { kind: 'link-lost', fatal: false, message: 'down' };

  it('looks at nothing while the migration moves', async () => {
    const t = setup([died]);
    for (let i = 0; i < 20; i++) {
      t.advance(500);
      t.w.progressed(i);
      await t.w.tick();
    }
    expect(t.looks()).toBe(0);
    expect(t.w.fired).toBeUndefined();
  });

  it('fails at once on a fatal finding seen twice, after the probe delay', async () => {
    const t = setup([died]);
    t.advance(STALL_PROBE_MS - 1);
    await t.w.tick();
    expect(t.looks()).toBe(0);
    t.advance(1);
    await t.w.tick();
    expect(t.w.fired).toBeUndefined();
    t.advance(500);
    await t.w.tick();
    expect(t.w.fired).toMatchObject({ kind: 'destination-died', stalledMs: STALL_PROBE_MS + 500 });
    expect(await t.failure()).toBe(t.w.fired);
  });

  it('rides out a transient finding until the stall limit, then names it; progress resets it', async () => {
    const t = setup([down], 8000);
    t.advance(3000);
    await t.w.tick();
    t.w.progressed(1); // the link came back
    t.advance(7000);
    await t.w.tick();
    expect(t.w.fired).toBeUndefined();
    t.advance(1000);
    await t.w.tick();
    expect(t.w.fired).toMatchObject({ kind: 'link-lost' });
    expect(t.w.fired!.message).toMatch(/down; no progress for 8000 ms/);
  });

  it('a stall with nothing found is a timeout', async () => {
    const t = setup([undefined], 5000);
    t.advance(5000);
    await t.w.tick();
    expect(t.w.fired).toMatchObject({ kind: 'timeout', message: 'no progress for 5000 ms (the limit is 5000 ms)' });
  });

  it('a watcher trips it at once', async () => {
    const t = setup([undefined]);
    t.w.trip({ kind: 'storage-lost', fatal: true, message: 'nfs gone' });
    expect(t.w.fired).toMatchObject({ kind: 'storage-lost' });
  });
});
