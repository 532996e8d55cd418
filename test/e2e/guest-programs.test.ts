/**
 * The guest programs (mlload, mlprobe) in a real guest under QEMU (TCG), no migration:
 * the loads run at the asked rates and QEMU sees them (dirty-rate measurement, block
 * statistics); a QMP stop/cont of ~500 ms shows up in the guest clock offset.
 */
import { createSocket, type Socket } from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lab/exec/run.ts';
import { startPauseProbe, stopPauseProbe, clockOffset } from '../../lab/guest/probe.ts';
import { startWorkload, stopWorkload } from '../../lab/guest/workload.ts';
import { buildGuestImage, kernelCmdline, type GuestImage } from '../../lab/image/build.ts';
import { makeConfigDrive, type ConfigDriveMeta } from '../../lab/image/configdrive.ts';
import { GuestShell, waitForGuestReady } from '../../lab/qemu/guest-shell.ts';
import { QmpClient } from '../../lab/qemu/qmp.ts';
import { bareGuestArgs } from './bare-guest.ts';

const BOOT_TIMEOUT_MS = 30_000;
const MiB = 1024 * 1024;
const meta: ConfigDriveMeta = {
  name: 'e2e-programs',
  uuid: '0b7e2a4c-5d6f-4a1b-9c8d-7e6f5a4b3c2d',
  ip: '10.99.0.22',
  prefix: 24,
  mac: '52:54:00:12:34:57',
  gateway: '10.99.0.1',
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface DirtyRateInfo {
  status: 'unstarted' | 'measuring' | 'measured';
  'dirty-rate'?: number;
  'calc-time': number;
  mode?: string;
  'sample-pages'?: number;
}

interface BlockStats {
  device: string;
  qdev?: string;
  'node-name'?: string;
  stats: { wr_bytes: number; wr_operations: number };
}

describe('guest programs under QEMU', { timeout: 60_000 }, () => {
  let dir = '';
  let image: GuestImage;
  let qemu: ResultPromise | undefined;
  let shell: GuestShell | undefined;
  let qmp: QmpClient | undefined;
  let ctlSocket = '';
  // The NIC's backend: a UDP socket on 127.0.0.1 that swallows whatever the guest sends.
  let wire: Socket | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'migralab-e2e-programs-'));
    image = await buildGuestImage({ cacheDir: path.join(dir, 'cache') });
    expect(image.cached).toBe(false);

    const dataDisk = path.join(dir, 'disk.qcow2');
    const configDrive = path.join(dir, 'disk.config');
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', dataDisk, '64M']);
    await makeConfigDrive(configDrive, meta);

    wire = createSocket('udp4');
    await new Promise<void>((resolve) => wire!.bind(0, '127.0.0.1', resolve));

    ctlSocket = path.join(dir, 'ctl.sock');
    const qmpSocket = path.join(dir, 'qmp.sock');
    qemu = execa(
      'qemu-system-x86_64',
      bareGuestArgs(image, {
        memoryMiB: 256,
        append: kernelCmdline(),
        consoleLog: path.join(dir, 'console.log'),
        extra: [
          '-blockdev', `driver=qcow2,node-name=data0,file.driver=file,file.filename=${dataDisk}`,
          '-device', 'virtio-blk-pci,drive=data0,id=vda',
          '-blockdev', `driver=raw,node-name=cfg0,read-only=on,file.driver=file,file.filename=${configDrive}`,
          '-device', 'virtio-blk-pci,drive=cfg0,id=vdb',
          '-netdev', `socket,id=n0,udp=127.0.0.1:${wire.address().port},localaddr=127.0.0.1:0`,
          '-device', `virtio-net-pci,netdev=n0,mac=${meta.mac}`,
          '-chardev', `socket,id=ctl,path=${ctlSocket},server=on,wait=off`,
          '-serial', 'chardev:ctl',
          '-qmp', `unix:${qmpSocket},server=on,wait=off`,
        ],
      }),
      { reject: false, stdin: 'ignore' },
    );
    const exited = qemu.then((r) => {
      throw new Error(`QEMU exited early (${r.exitCode}): ${String(r.stderr).trim()}`);
    });
    shell = await Promise.race([waitForGuestReady(ctlSocket, { timeoutMs: BOOT_TIMEOUT_MS }), exited]);
    qmp = await QmpClient.connect(qmpSocket, { retryUntilMs: 10_000 });
  }, 120_000);

  afterAll(async () => {
    shell?.close();
    await qmp?.close();
    wire?.close();
    if (qemu?.pid !== undefined && qemu.exitCode === null) {
      process.kill(qemu.pid, 'SIGTERM');
      const done = await Promise.race([qemu.then(() => true), sleep(5_000).then(() => false)]);
      if (!done) process.kill(qemu.pid, 'SIGKILL');
      await qemu;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 30_000);

  it('installs /bin/mlload and /bin/mlprobe as static programs that run', async () => {
    const r = await shell!.exec('ls -l /bin/mlload /bin/mlprobe && mlprobe clock && mlload; echo "rc=$?"');
    expect(r.output).toMatch(/\/bin\/mlload\n/);
    expect(r.output).toMatch(/\/bin\/mlprobe\n/);
    expect(r.output).toMatch(/^\d{19}\n/m);
    expect(r.output).toContain('usage: mlload');
    expect(r.output).toMatch(/rc=2\n$/);
  });

  it('dirties memory at 20 MiB/s over 32 MiB, and QEMU measures about that dirty rate', async () => {
    const w = await startWorkload(shell!, { memory: { rateMiBs: 20, workingSetBytes: 32 * MiB } });
    expect(w.memory?.pid).toBeGreaterThan(1);
    // QEMU's own view over 1 s. Mode page-sampling: QEMU hashes sample pages before and after and
    // counts the changed ones; 4096 per GiB (the most it takes) puts ~128 of them in the working set.
    // (mode dirty-bitmap would count every page, but QEMU 7.2 under TCG segfaults on it.)
    const t0 = Date.now();
    await qmp!.execute('calc-dirty-rate', { 'calc-time': 1, 'sample-pages': 4096, mode: 'page-sampling' });
    let info: DirtyRateInfo;
    do {
      await sleep(100);
      info = await qmp!.execute<DirtyRateInfo>('query-dirty-rate');
    } while (info.status !== 'measured' && Date.now() - t0 < 10_000);
    await sleep(Math.max(0, 2_000 - (Date.now() - t0)));
    const report = await stopWorkload(shell!, w);
    console.log(`memory load: ${JSON.stringify(report.memory)}; QEMU dirty rate: ${JSON.stringify(info)}`);
    const m = report.memory!;
    expect(m.workingSetBytes).toBe(32 * MiB);
    expect(m.seconds).toBeGreaterThan(1.5);
    expect(m.rateMiBs).toBeGreaterThan(20 * 0.75);
    expect(m.rateMiBs).toBeLessThan(20 * 1.25);
    expect(m.bytesDirtied / MiB / m.seconds).toBeCloseTo(m.rateMiBs, 3);
    expect(info.status).toBe('measured');
    // distinct pages whose content changed within 1 s, estimated from ~1000 samples (±~11%), in
    // whole MiB/s (rounded down); an idle guest of this kind measures 0
    expect(info['dirty-rate']).toBeGreaterThanOrEqual(20 * 0.7);
    expect(info['dirty-rate']).toBeLessThanOrEqual(20 * 1.5);
  });

  it('writes the disk at 5 MiB/s, and QEMU counts about those bytes; stopped from a new control connection', async () => {
    const stats = async () => {
      const all = await qmp!.execute<BlockStats[]>('query-blockstats');
      return all.find((b) => b.qdev?.includes('vda') || b['node-name'] === 'data0')!.stats.wr_bytes;
    };
    const before = await stats();
    const started = await startWorkload(shell!, { disk: { rateMiBs: 5, offsetMiB: 8, sizeMiB: 16 } });
    // what a caller keeps across a migration: the plain value, and a new connection to the guest
    const w = JSON.parse(JSON.stringify(started)) as typeof started;
    shell!.close();
    await sleep(2_000);
    shell = await GuestShell.connect(ctlSocket);
    await shell.waitReady({ timeoutMs: 10_000 });
    const report = await stopWorkload(shell, w);
    const qemuBytes = (await stats()) - before;
    console.log(`disk load: ${JSON.stringify(report.disk)}; QEMU wr_bytes delta: ${qemuBytes}`);
    const d = report.disk!;
    expect(d.rateMiBs).toBeGreaterThan(5 * 0.75);
    expect(d.rateMiBs).toBeLessThan(5 * 1.25);
    expect(d.bytesWritten).toBeGreaterThan(5 * MiB * 1.5);
    expect(d.bytesWritten).toBeLessThan(5 * MiB * 3);
    // O_DIRECT: every byte reached the virtual disk
    expect(qemuBytes).toBeGreaterThanOrEqual(d.bytesWritten);
    expect(qemuBytes).toBeLessThan(d.bytesWritten + 2 * MiB);
  });

  it('a bad disk region fails with the guest program\'s own message, and nothing stays running', async () => {
    const err = await startWorkload(shell!, { disk: { rateMiBs: 5, offsetMiB: 60, sizeMiB: 16 } }).catch((e: unknown) => e);
    expect(String(err)).toMatch(/region ends at/);
    expect((await shell!.exec('pidof mlload; ls /run')).output).not.toMatch(/mlload/);
  });

  it('sees a QMP stop/cont of ~500 ms as a clock offset change (TCG: the probe loop sees no gap)', async () => {
    const probe = await startPauseProbe(shell!, { periodUs: 1000 });
    await sleep(500);
    const before = await clockOffset(shell!);
    const cursor = qmp!.eventCursor();
    await qmp!.execute('stop');
    await sleep(500);
    await qmp!.execute('cont');
    const stopEv = await qmp!.waitForEvent('STOP', undefined, 5_000, { since: cursor });
    const resumeEv = await qmp!.waitForEvent('RESUME', undefined, 5_000, { since: cursor });
    const ts = (e: typeof stopEv) => e.timestamp.seconds * 1000 + e.timestamp.microseconds / 1000;
    const pausedMs = ts(resumeEv) - ts(stopEv);
    await sleep(500);
    const after = await clockOffset(shell!);
    const seen = await stopPauseProbe(shell!, probe);
    const offsetDelta = after.offsetMs - before.offsetMs;
    console.log(
      `QMP pause ${pausedMs.toFixed(1)} ms (STOP→RESUME event timestamps); clock offset before ${before.offsetMs.toFixed(1)} ± ${before.uncertaintyMs.toFixed(1)} ms, ` +
        `after ${after.offsetMs.toFixed(1)} ± ${after.uncertaintyMs.toFixed(1)} ms, delta ${offsetDelta.toFixed(1)} ms; probe loop: ${JSON.stringify(seen)}`,
    );
    expect(pausedMs).toBeGreaterThan(450);
    expect(Math.abs(offsetDelta - 500)).toBeLessThan(150);
    expect(before.uncertaintyMs).toBeLessThan(50);
    expect(after.uncertaintyMs).toBeLessThan(50);
    // TCG: the guest's clocks stood still during the pause, so its realtime fell behind by it
    expect(offsetDelta).toBeGreaterThan(pausedMs - 150);
    expect(offsetDelta).toBeLessThan(pausedMs + 150);
    // the loop ran all along, and its clocks did not see the pause (see mlprobe.c)
    expect(seen.periodUs).toBe(1000);
    expect(seen.rounds).toBeGreaterThan(500);
    expect(seen.maxGapEnd).toBeGreaterThanOrEqual(seen.maxGapStart);
    expect(seen.maxGapMs).toBeLessThan(pausedMs - 150);
  });
});
