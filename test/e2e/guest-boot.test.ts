/**
 * Boots the real guest image under QEMU (TCG) with a data disk, a config drive and a
 * NIC, and checks the init's contract through the control shell on ttyS1.
 */
import { createHash } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../lab/exec/run.ts';
import { buildGuestImage, kernelCmdline, type GuestImage } from '../../lab/image/build.ts';
import { makeConfigDrive, type ConfigDriveMeta } from '../../lab/image/configdrive.ts';
import { CONFIG_MOUNT, PROBE_OK_MARKER, READY_MARKER } from '../../lab/image/init.ts';
import { waitForGuestReady, type GuestShell } from '../../lab/qemu/guest-shell.ts';
import { bareGuestArgs } from './bare-guest.ts';

const BOOT_TIMEOUT_MS = 30_000;
const GUEST_MEMORY_MIB = 128;
const meta: ConfigDriveMeta = {
  name: 'e2e-guest',
  uuid: '6d0f7c1e-2a3b-4c5d-8e9f-0a1b2c3d4e5f',
  ip: '10.99.0.21',
  prefix: 24,
  mac: '52:54:00:12:34:56',
  gateway: '10.99.0.1',
};

describe('guest image boots under QEMU', { timeout: 30_000 }, () => {
  let dir = '';
  let image: GuestImage;
  let qemu: ResultPromise | undefined;
  let shell: GuestShell | undefined;
  let consoleLog = '';
  let dataDisk = '';
  let bootMs = 0;
  // The NIC's backend: QEMU sends every frame the guest transmits as one UDP datagram to this
  // socket on 127.0.0.1, so the test sees exactly what leaves eth0 (and nothing leaves the host).
  let wire: Socket | undefined;
  const frames: Buffer[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'migralab-e2e-'));
    const cacheDir = path.join(dir, 'cache');
    image = await buildGuestImage({ cacheDir });
    expect(image.cached).toBe(false);

    dataDisk = path.join(dir, 'disk.qcow2');
    const configDrive = path.join(dir, 'disk.config');
    await run(['qemu-img', 'create', '-q', '-f', 'qcow2', dataDisk, '64M']);
    await makeConfigDrive(configDrive, meta);

    wire = createSocket('udp4');
    wire.on('message', (frame) => frames.push(frame));
    await new Promise<void>((resolve) => wire!.bind(0, '127.0.0.1', resolve));
    const wirePort = wire.address().port;

    const socket = path.join(dir, 'ctl.sock');
    consoleLog = path.join(dir, 'console.log');
    const t0 = Date.now();
    qemu = execa(
      'qemu-system-x86_64',
      bareGuestArgs(image, {
        memoryMiB: GUEST_MEMORY_MIB,
        append: kernelCmdline(),
        consoleLog,
        extra: [
          '-blockdev', `driver=qcow2,node-name=data0,file.driver=file,file.filename=${dataDisk}`,
          '-device', 'virtio-blk-pci,drive=data0',
          '-blockdev', `driver=raw,node-name=cfg0,read-only=on,file.driver=file,file.filename=${configDrive}`,
          '-device', 'virtio-blk-pci,drive=cfg0',
          '-netdev', `socket,id=n0,udp=127.0.0.1:${wirePort},localaddr=127.0.0.1:0`,
          '-device', `virtio-net-pci,netdev=n0,mac=${meta.mac}`,
          '-chardev', `socket,id=ctl,path=${socket},server=on,wait=off`,
          '-serial', 'chardev:ctl',
        ],
      }),
      { reject: false, stdin: 'ignore' },
    );
    const exited = qemu.then((r) => {
      throw new Error(`QEMU exited early (${r.exitCode}): ${String(r.stderr).trim()}`);
    });
    shell = await Promise.race([waitForGuestReady(socket, { timeoutMs: BOOT_TIMEOUT_MS }), exited]);
    bootMs = Date.now() - t0;
    const uptime = /init done after ([\d.]+) s/.exec(await readFile(consoleLog, 'utf8'))?.[1];
    console.log(`guest boot-to-ready: ${bootMs} ms from QEMU start (guest uptime at ${READY_MARKER}: ${uptime ?? '?'} s)`);
  }, 90_000);

  afterAll(async () => {
    shell?.close();
    wire?.close();
    if (qemu?.pid !== undefined && qemu.exitCode === null) {
      process.kill(qemu.pid, 'SIGTERM');
      const done = await Promise.race([qemu.then(() => true), new Promise((r) => setTimeout(() => r(false), 5_000))]);
      if (!done) process.kill(qemu.pid, 'SIGKILL');
      await qemu;
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  }, 30_000);

  it('a second build is served from the cache, fast', async () => {
    const t0 = Date.now();
    const again = await buildGuestImage({ cacheDir: path.dirname(path.dirname(image.initrd)) });
    expect(again).toEqual({ ...image, cached: true });
    expect(Date.now() - t0).toBeLessThan(2_000);
  });

  it('reports READY with its name on the console and the control channel', async () => {
    expect(shell!.status).toEqual({ ready: true, detail: meta.name });
    expect(await readFile(consoleLog, 'utf8')).toMatch(new RegExp(`^${READY_MARKER} ${meta.name}\r?$`, 'm'));
    expect(bootMs).toBeLessThan(BOOT_TIMEOUT_MS);
  });

  it('takes its host name from the config drive', async () => {
    expect(await shell!.exec('hostname')).toEqual({ output: `${meta.name}\n`, status: 0 });
  });

  it('configures eth0 with the IP and prefix from the config drive and keeps the MAC', async () => {
    const addr = await shell!.exec('ip -o -4 addr show dev eth0');
    expect(addr.status).toBe(0);
    expect(addr.output).toContain(`inet ${meta.ip}/${meta.prefix} `);
    expect(await shell!.exec('cat /sys/class/net/eth0/address')).toEqual({ output: `${meta.mac}\n`, status: 0 });
    // READY promises that packets can leave: carrier on and a real qdisc attached.
    expect(await shell!.exec('cat /sys/class/net/eth0/carrier')).toEqual({ output: '1\n', status: 0 });
    expect((await shell!.exec('ip link show dev eth0')).output).not.toContain(' qdisc noop ');
    // An ARP request for the gateway must leave eth0 with the configured MAC and IP.
    const isArpForGateway = (f: Buffer) =>
      f.length >= 42 &&
      f.readUInt16BE(12) === 0x0806 &&
      f.readUInt16BE(20) === 1 &&
      f.subarray(22, 28).toString('hex') === meta.mac.replace(/:/g, '') &&
      f.subarray(28, 32).join('.') === meta.ip &&
      f.subarray(38, 42).join('.') === meta.gateway;
    await shell!.exec(`ping -c 1 -W 1 ${meta.gateway}`);
    expect(frames.some(isArpForGateway)).toBe(true);
  });

  it('mounts the config drive read-only with the OpenStack metadata', async () => {
    const md = await shell!.exec(`cat ${CONFIG_MOUNT}/openstack/latest/meta_data.json`);
    expect(md.status).toBe(0);
    expect(JSON.parse(md.output)).toMatchObject({ uuid: meta.uuid, name: meta.name });
    const mounts = await shell!.exec(`grep ' ${CONFIG_MOUNT} ' /proc/mounts`);
    expect(mounts.output).toMatch(new RegExp(`^/dev/vdb ${CONFIG_MOUNT} vfat ro,`));
  });

  it('reports exit status and stderr, and runs queued commands in order', async () => {
    expect(await shell!.exec('echo "@@E"; ls /nonexistent; exit 7')).toEqual({
      output: '@@E\nls: /nonexistent: No such file or directory\n',
      status: 7,
    });
    const results = await Promise.all(['a', 'b', 'c'].map((s) => shell!.exec(`printf ${s}`)));
    expect(results.map((r) => r.output)).toEqual(['a', 'b', 'c']);
  });

  it('writes 1 MiB to the data disk (vda) and reads the same bytes back, in the guest and on the host', async () => {
    const write = await shell!.exec(
      'dd if=/dev/urandom of=/tmp/blk bs=1M count=1 2>/dev/null && dd if=/tmp/blk of=/dev/vda bs=1M count=1 seek=3 conv=fsync 2>/dev/null && md5sum </tmp/blk',
    );
    expect(write.status).toBe(0);
    const written = write.output.split(/\s/)[0]!;
    expect(written).toMatch(/^[0-9a-f]{32}$/);
    const readBack = 'dd if=/dev/vda bs=1M count=1 skip=3 iflag=direct 2>/dev/null | md5sum';
    for (let i = 0; i < 2; i++) {
      const r = await shell!.exec(readBack);
      expect(r.status).toBe(0);
      expect(r.output.split(/\s/)[0]).toBe(written);
    }
    // The qcow2 file itself holds the data (fsync reached QEMU's flush); -U reads it while QEMU runs.
    const raw = path.join(dir, 'disk.raw');
    await run(['qemu-img', 'convert', '-U', '-f', 'qcow2', '-O', 'raw', dataDisk, raw]);
    const fh = await open(raw, 'r');
    try {
      const buf = Buffer.alloc(1 << 20);
      await fh.read(buf, 0, buf.length, 3 << 20);
      expect(createHash('md5').update(buf).digest('hex')).toBe(written);
    } finally {
      await fh.close();
      await rm(raw, { force: true });
    }
  });

  it(`probe boot (${kernelCmdline({ probe: true }).split(' ').pop()}) prints ${PROBE_OK_MARKER} and QEMU exits by itself`, async () => {
    const probeLog = path.join(dir, 'probe.log');
    const t0 = Date.now();
    const r = await execa('qemu-system-x86_64', bareGuestArgs(image, { memoryMiB: GUEST_MEMORY_MIB, append: kernelCmdline({ probe: true }), consoleLog: probeLog }), {
      reject: false,
      timeout: BOOT_TIMEOUT_MS,
      stdin: 'ignore',
    });
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBe(0);
    expect(await readFile(probeLog, 'utf8')).toMatch(new RegExp(`^${PROBE_OK_MARKER}\r?$`, 'm'));
    console.log(`probe boot: ${Date.now() - t0} ms`);
  }, 40_000);
});
