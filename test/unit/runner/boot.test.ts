import { describe, it, expect } from 'vitest';
import { snapshotKey, templateSpec } from '../../../lab/migrate/qemu/snapshot.ts';
import { bootSummary, guestSpec, GuestSlot } from '../../../lab/runner/guests.ts';
import { overlapsWith } from '../../../lab/runner/run.ts';
import { expandCells } from '../../../lab/runner/matrix.ts';
import { scenarioSchema } from '../../../lab/config/scenario.ts';
import { identityScript, initScript } from '../../../lab/image/init.ts';
import type { MigrationDriver } from '../../../lab/migrate/types.ts';

const MiB = 2 ** 20;
const build = { id: 'system', binary: '/usr/bin/qemu-system-x86_64', firmwareDirs: [], version: '10.0.2', versionText: 'QEMU emulator version 10.0.2' };
const image = { kernel: '/cache/abc/vmlinuz', initrd: '/cache/abc/initrd.img', hash: 'abc', kernelVersion: '6.1.0', cached: true };
const spec = (o: Partial<Parameters<typeof guestSpec>[0]> = {}) =>
  guestSpec({ name: 'block-vm', strategy: 'block', index: 0, ip: '10.77.0.100', prefix: 24, memoryBytes: 256 * MiB, diskBytes: 512 * MiB, diskDataBytes: 200 * MiB, accelerator: 'tcg', image, build, ...o });

describe('booted snapshots', () => {
  it('key on what the saved state must match, not on who the guest is', () => {
    const k = snapshotKey(spec());
    // another guest of the same shape: another name, address, strategy, data
    expect(snapshotKey(spec({ name: 'shared-vm', strategy: 'shared', index: 1, ip: '10.77.0.101', diskDataBytes: 16 * MiB }))).toBe(k);
    // what changes the saved state or the devices it loads into
    expect(snapshotKey(spec({ memoryBytes: 128 * MiB }))).not.toBe(k);
    expect(snapshotKey(spec({ diskBytes: 256 * MiB }))).not.toBe(k);
    expect(snapshotKey(spec({ accelerator: 'kvm' }))).not.toBe(k);
    expect(snapshotKey(spec({ build: { ...build, version: '7.2.22' } }))).not.toBe(k);
    expect(snapshotKey(spec({ build: { ...build, binary: '/opt/qemu/bin/qemu-system-x86_64' } }))).not.toBe(k);
    expect(snapshotKey(spec({ image: { ...image, hash: 'def' } }))).not.toBe(k);
  });

  it('are made from a template of the same shape with a placeholder identity and no data', () => {
    const g = { ...spec(), ports: { migration: 4445, nbd: 10810 } };
    const t = templateSpec(g);
    expect(t).toMatchObject({ memoryBytes: g.memoryBytes, diskBytes: g.diskBytes, build: g.build, image: g.image, accelerator: 'tcg', tap: g.tap, diskDataBytes: 0 });
    expect(t.name).not.toBe(g.name);
    expect(t.ip).toMatch(/^169\.254\./);
    expect(t.mac).not.toBe(g.mac);
    expect(t).not.toHaveProperty('ports');
    expect(snapshotKey(t)).toBe(snapshotKey(g));
    // every template has one name (a node makes one at a time); each shape's its own MAC
    const other = templateSpec(spec({ memoryBytes: 128 * MiB }));
    expect(other.name).toBe('ml-snapshot');
    expect(other.mac).not.toBe(t.mac);
    expect(t.mac).toMatch(/^02:6d:6c(:[0-9a-f]{2}){3}$/);
  });

  it('a restore runs the same identity steps a boot does, after forgetting the template', () => {
    // one script for both: /init calls it at boot
    expect(initScript()).toContain('status=$(/bin/mlidentity boot)');
    const s = identityScript();
    const restore = s.slice(s.indexOf('if [ "$mode" = restore ]'), s.indexOf('# config drive'));
    for (const step of ['umount /mnt/config', 'blockdev --flushbufs', 'drop_caches', 'mlprobe seed', 'ip addr flush']) expect(restore).toContain(step);
    expect(s).toContain('ip link set dev "$ifc" address "$MAC"');
  });

  it('the progress line says how the guests started', () => {
    const g = (mode: 'snapshot' | 'cold', snapshotMadeMs: number | null = null) => ({ guest: 'x', node: 'controller', mode, ms: 1, snapshotMadeMs, note: null });
    expect(bootSummary({ wallMs: 1400, guests: [g('snapshot'), g('snapshot')] })).toBe('guests up in 1.4 s (restored from a booted snapshot)');
    expect(bootSummary({ wallMs: 12000, guests: [g('snapshot', 10500), g('snapshot', 10500)] })).toBe('guests up in 12.0 s (restored from a booted snapshot; the snapshot was made first, in 10.5 s)');
    expect(bootSummary({ wallMs: 9000, guests: [g('cold'), g('snapshot')] })).toBe('guests up in 9.0 s (1 of 2 restored from a booted snapshot, the others booted cold)');
    expect(bootSummary({ wallMs: 9000, guests: [g('cold')] })).toBe('guests up in 9.0 s (booted cold)');
  });
});

describe('overlapping iterations', () => {
  const driver = {} as MigrationDriver;
  const cells = (o: object = {}) => expandCells(scenarioSchema.parse({ name: 's', ...o }));
  it('only for another guest, with the same link and no fault on either side', () => {
    const [block, shared] = cells();
    const a = new GuestSlot(spec(), driver);
    const b = new GuestSlot(spec({ name: 'shared-vm', strategy: 'shared' }), driver);
    expect(overlapsWith({ slot: a, cell: block! }, b, shared!)).toBe(true);
    expect(overlapsWith({ slot: a, cell: block! }, a, block!)).toBe(false);
    b.broken = 'stopped answering';
    expect(overlapsWith({ slot: a, cell: block! }, b, shared!)).toBe(false);
    b.broken = undefined;
    const slow = cells({ link: { rate: '100Mbit' } });
    expect(overlapsWith({ slot: a, cell: block! }, b, slow[1]!)).toBe(false);
    const faulty = cells({ faults: [{ kind: 'kill-destination', afterMs: 100 }] });
    const withFault = faulty.find((c) => c.fault)!;
    expect(overlapsWith({ slot: a, cell: withFault }, b, shared!)).toBe(false);
    expect(overlapsWith({ slot: a, cell: block! }, b, withFault)).toBe(false);
  });
});
