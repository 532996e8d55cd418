/**
 * Guests restored from a booted snapshot (lab/migrate/qemu/snapshot.ts) must be the guests a
 * cold boot gives: each with its own name, address, MAC, config drive, disk, clock and random
 * generator, none of the template's. A snapshot that does not load is not kept, and the guest
 * boots cold instead.
 */
import { describe, it, expect } from 'vitest';
import { createHash } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync, existsSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { run } from '../../lab/exec/run.ts';
import { startLab, type Guest } from '../../lab/api.ts';
import { snapshotDir, snapshotFile } from '../../lab/migrate/qemu/snapshot.ts';
import { CONFIG_MOUNT } from '../../lab/image/init.ts';
import { testTopologyFile } from './helpers.ts';

const MiB = 2 ** 20;
const sh = async (g: Guest, cmd: string) => {
  const r = await g.exec(cmd);
  expect(r.status, `${cmd}: ${r.output}`).toBe(0);
  return r.output.trim();
};

describe('guests restored from a booted snapshot', () => {
  it('each has its own identity, disk, clock and random bytes; the snapshot is made once and reused', async () => {
    const said: string[] = [];
    await using lab = await startLab({ topology: testTopologyFile, progress: (m) => said.push(m) });
    const [a, b] = await Promise.all([lab.boot({ strategy: 'block', memory: '128MiB' }), lab.boot({ strategy: 'shared', memory: '128MiB' })]);
    for (const g of [a, b]) {
      expect(g.boot).toMatchObject({ mode: 'snapshot', note: null });
      expect(g.boot!.ms).toBeGreaterThan(0);
    }
    // both waited for the same snapshot (or found it cached): never two made
    expect(a.boot!.snapshotMadeMs).toBe(b.boot!.snapshotMadeMs);
    expect(said.filter((m) => m.startsWith('snapshot: booting a template')).length).toBe(a.boot!.snapshotMadeMs === null ? 0 : 1);
    const c = await lab.boot({ strategy: 'block', memory: '128MiB' });
    expect(c.boot).toMatchObject({ mode: 'snapshot', snapshotMadeMs: null, note: null });

    const spec = (g: Guest) => g.slot.spec;
    for (const g of [a, b, c]) {
      expect(await sh(g, 'hostname')).toBe(g.name);
      expect(await sh(g, 'cat /run/migralab-status')).toBe(`MIGRALAB-READY ${g.name}`);
      expect(await sh(g, 'ip -o -4 addr show dev eth0')).toContain(`inet ${g.ip}/24 `);
      // the MAC the migration's destination QEMU is started with, not the template's
      expect(await sh(g, 'cat /sys/class/net/eth0/address')).toBe(spec(g).mac);
      expect(await sh(g, `grep -c . /proc/net/route`)).not.toBe('0');
      expect(await sh(g, `cat ${CONFIG_MOUNT}/migralab/env`)).toContain(`NAME=${g.name}\n`);
      expect(await sh(g, `grep -c ' ${CONFIG_MOUNT} vfat ro' /proc/mounts`)).toBe('1');
      // the observer reaches it at its own address
      const p = lab.ping(g, { intervalMs: 20 });
      await new Promise((r) => setTimeout(r, 300));
      expect((await p.stop()).summary.received).toBeGreaterThan(0);
    }
    // its clock is the host's (a boot reads the RTC to the second; this is closer)
    for (const g of [a, b, c]) {
      const before = Date.now();
      const guestNs = BigInt(await sh(g, 'mlprobe clock'));
      const after = Date.now();
      const guestMs = Number(guestNs / 1_000_000n);
      expect(guestMs).toBeGreaterThan(before - 1000);
      expect(guestMs).toBeLessThan(after + 1000);
    }
    // every clone draws its own random bytes (its generator is reseeded with the host's bytes at restore)
    const draws = await Promise.all([a, b, c].map((g) => sh(g, 'head -c 32 /dev/urandom | md5sum')));
    expect(new Set(draws).size).toBe(3);
    // the guest reads its own data disk (random data), not the template's empty one
    const dir = mkdtempSync(join(tmpdir(), 'mlsnap-'));
    try {
      const guestMd5 = (await sh(a, 'dd if=/dev/vda bs=1M count=1 iflag=direct 2>/dev/null | md5sum')).split(' ')[0];
      expect(guestMd5).not.toBe(createHash('md5').update(Buffer.alloc(MiB)).digest('hex'));
      const disk = (await a.slot.instance().disk()).filename;
      const raw = join(dir, 'first.raw');
      await run(['qemu-img', 'dd', '-U', '-f', 'qcow2', '-O', 'raw', 'bs=1M', 'count=1', `if=${disk}`, `of=${raw}`]);
      expect(createHash('md5').update(readFileSync(raw)).digest('hex')).toBe(guestMd5);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // and it migrates like any guest, every proof included
    const r = await lab.migrate(a);
    expect(r.ok, r.error ?? '').toBe(true);
    expect(r.verified).toEqual({ onDestination: true, sourceGone: true, diskIntact: true, ramIntact: true, answersPing: true });
  }, 240_000);

  it('a snapshot that does not load is removed and the guest boots cold, saying why', async () => {
    // a shape of its own (160 MiB), so no other test's snapshot is touched
    await using lab = await startLab({ topology: testTopologyFile });
    const first = await lab.boot({ strategy: 'block', memory: '160MiB' });
    expect(first.boot!.mode).toBe('snapshot');
    const file = snapshotFile(first.slot.spec);
    expect(existsSync(file)).toBe(true);
    writeFileSync(file, readFileSync(file).subarray(0, 4096));
    const second = await lab.boot({ strategy: 'block', memory: '160MiB' });
    expect(second.boot).toMatchObject({ mode: 'cold', snapshotMadeMs: null });
    expect(second.boot!.note).toMatch(/^not restored from a snapshot \(.+\); booted cold$/);
    expect(existsSync(file)).toBe(false);
    expect(await sh(second, 'hostname')).toBe(second.name);
    // cold boots leave the generator to the kernel; make sure this one is usable too
    expect(await sh(second, `ip -o -4 addr show dev eth0`)).toContain(`inet ${second.ip}/`);
  }, 240_000);

  it('a cold lab boots from the kernel', async () => {
    await using lab = await startLab({ topology: testTopologyFile, boot: 'cold' });
    const g = await lab.boot({ strategy: 'shared' });
    expect(g.boot).toMatchObject({ mode: 'cold', snapshotMadeMs: null, note: null });
    expect(await sh(g, 'hostname')).toBe(g.name);
  }, 120_000);
});
