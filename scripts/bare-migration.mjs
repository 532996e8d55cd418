#!/usr/bin/env node
// A bare live migration, driven by hand: the yardstick migralab's own figures are held
// against (scripts/bench-bare.mjs). It uses migralab's lab (namespaces, bridges, ganesha)
// and its guest image, and nothing else of migralab: QEMU is started here, QMP is spoken
// here over its Unix socket, one data disk (no config drive), no probes in the guest, no
// QMP sampling during the migration, ping from the observer namespace.
//
//   node scripts/bare-migration.mjs [--strategy block|shared] [--runs 3] [--memory 256]
//        [--disk 512] [--data 200] [--interval 10] [--topology FILE] [--json]
//
// Prints one line per migration and, with --json, a JSON document on stdout:
//   { strategy, runs: [{ durationMs, maxGapMs, downtimeMs, totalTimeMs }] }
// The lab is raised if needed and left as it was found.
import { $, argv, fs, path, sleep } from 'zx';
import net from 'node:net';
import { randomFillSync } from 'node:crypto';
import { execFileSync } from 'node:child_process';

$.verbose = false;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const strategy = argv.strategy ?? 'block';
const runs = Number(argv.runs ?? 3);
const memoryMiB = Number(argv.memory ?? 256);
const diskMiB = Number(argv.disk ?? 512);
const dataMiB = Number(argv.data ?? 200);
const intervalMs = Number(argv.interval ?? 10);
const topology = argv.topology ?? path.join(root, 'scenarios/topologies/two-node.lab.yaml');
const log = (s) => console.error(`bare: ${s}`);
if (!['block', 'shared'].includes(strategy)) throw new Error(`--strategy: block or shared, not ${strategy}`);

const wasUp = JSON.parse((await $`node ${root}/scripts/migralab.js status ${topology} --json`).stdout).state === 'up';
const lab = JSON.parse((await $`node ${root}/scripts/migralab.js up ${topology} --json`).stdout);
const [src, dst] = lab.nodes.filter((n) => n.roles.includes('compute'));
const nfs = lab.nodes.find((n) => n.roles.includes('nfs-server'));
const ip = lab.nodes[0].address.replace(/\.\d+$/, '.250');
const mac = '52:54:00:00:02:50';
const work = path.join(path.dirname(lab.nodes[0].instancesDir), '..', 'bare');
const inNode = (n) => ['ip', 'netns', 'exec', n.netns];

/** Minimal QMP: one socket, replies in order, events kept with their timestamps. */
async function qmp(sock) {
  for (let i = 0; ; i++) {
    try {
      const s = await new Promise((res, rej) => {
        const c = net.createConnection(sock);
        c.once('connect', () => res(c));
        c.once('error', rej);
      });
      let buf = '';
      const waiting = [];
      const events = [];
      const eventWaiters = [];
      s.setEncoding('utf8');
      s.on('data', (d) => {
        buf += d;
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const m = JSON.parse(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          if (m.event) {
            events.push(m);
            for (const w of [...eventWaiters]) if (w.match(m)) (eventWaiters.splice(eventWaiters.indexOf(w), 1), w.res(m));
          } else if ('return' in m || 'error' in m) waiting.shift()?.(m);
        }
      });
      const cmd = (execute, args) =>
        new Promise((res, rej) => {
          waiting.push((m) => (m.error ? rej(new Error(`${execute}: ${m.error.desc}`)) : res(m.return)));
          s.write(JSON.stringify(args ? { execute, arguments: args } : { execute }) + '\n');
        });
      const event = (match) => {
        const seen = events.find(match);
        return seen ? Promise.resolve(seen) : new Promise((res) => eventWaiters.push({ match, res }));
      };
      await new Promise((r) => setTimeout(r, 20)); // greeting
      waiting.length = 0;
      await cmd('qmp_capabilities');
      return { cmd, event, events, close: () => s.destroy() };
    } catch (e) {
      if (i > 200) throw e;
      await sleep(50);
    }
  }
}

function qemuArgs(n, diskArg, incoming) {
  const dir = path.join(work, n.name);
  return [
    'qemu-system-x86_64', '-name', 'bare', '-machine', 'pc', '-accel', 'tcg', '-cpu', 'qemu64', '-smp', '1', '-m', `${memoryMiB}M`,
    '-nodefaults', '-no-user-config', '-display', 'none', '-vga', 'none',
    '-kernel', lab.image.kernel, '-initrd', lab.image.initrd,
    '-append', 'console=ttyS0 quiet loglevel=3 rdinit=/init mitigations=off tsc=reliable no_timer_check',
    '-qmp', `unix:${dir}/qmp.sock,server=on,wait=off`,
    '-serial', `file:${dir}/console.log`,
    '-chardev', `socket,id=ctl,path=${dir}/ctl.sock,server=on,wait=off`, '-serial', 'chardev:ctl',
    '-netdev', 'tap,id=net0,ifname=tap-bare,script=no,downscript=no',
    '-device', `virtio-net-pci,netdev=net0,mac=${mac},addr=0x3`,
    '-blockdev', diskArg, '-device', 'virtio-blk-pci,drive=disk0,addr=0x4',
    ...(incoming ? ['-incoming', 'defer'] : []),
    '-pidfile', `${dir}/qemu.pid`, '-daemonize',
  ];
}

const fileDisk = (f) => JSON.stringify({ driver: 'qcow2', 'node-name': 'disk0', file: { driver: 'file', filename: f } });
const nfsDisk = (f) => JSON.stringify({ driver: 'qcow2', 'node-name': 'disk0', file: { driver: 'nfs', server: { type: 'inet', host: nfs.address }, path: f } });
const diskFor = (n) => {
  if (strategy === 'shared') return n.name === nfs.name ? fileDisk(path.join(nfs.instancesDir, 'bare', 'disk.qcow2')) : nfsDisk(path.join(nfs.instancesDir, 'bare', 'disk.qcow2'));
  return fileDisk(path.join(work, n.name, 'disk.qcow2'));
};

async function start(n, incoming) {
  const dir = path.join(work, n.name);
  await fs.mkdirp(dir);
  await $`${inNode(n)} sh -c ${'ip link show tap-bare >/dev/null 2>&1 || { ip tuntap add dev tap-bare mode tap && ip link set tap-bare master br0 up; }'}`;
  await $`${inNode(n)} ${qemuArgs(n, diskFor(n), incoming)}`;
  const pid = Number((await fs.readFile(path.join(dir, 'qemu.pid'), 'utf8')).trim());
  started.add(pid);
  return { node: n, pid, q: await qmp(path.join(dir, 'qmp.sock')) };
}

async function stop(vm) {
  await vm.q.cmd('quit').catch(() => {});
  vm.q.close();
  for (let i = 0; i < 100 && fs.existsSync(`/proc/${vm.pid}`); i++) await sleep(20);
  try { process.kill(vm.pid, 'SIGKILL'); } catch {}
}

const COMMAND_PREFIX = '@@X ';

/** The guest's address, set through its control shell (it has no config drive). */
async function configureGuest(n) {
  const sock = path.join(work, n.name, 'ctl.sock');
  const prefix = Number(argv.prefix ?? 24);
  for (let i = 0; i < 600; i++) {
    const out = await new Promise((res) => {
      const c = net.createConnection(sock);
      let text = '';
      c.on('error', () => res(''));
      c.on('data', (d) => (text += d));
      // the guest's control loop runs only whole lines that start with its command prefix (lab/image/init.ts COMMAND_PREFIX)
      c.on('connect', () => c.write(`${COMMAND_PREFIX}ip addr add ${ip}/${prefix} dev eth0 2>/dev/null; ip link set eth0 up; echo BARE-$((6*7))\n`));
      setTimeout(() => (c.destroy(), res(text)), 300);
    });
    if (out.includes('BARE-42')) return;
    await sleep(200);
  }
  throw new Error('guest control shell did not answer');
}

function pingStart() {
  const p = $`ip netns exec ${lab.observer.netns} ping -D -n -i ${intervalMs / 1000} ${ip}`.nothrow();
  const times = [];
  p.stdout.on('data', (d) => {
    for (const m of String(d).matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)) times.push(Number(m[1]) * 1000);
  });
  return { p, times };
}

function maxGap(times, from, to) {
  let best = 0;
  for (let i = 1; i < times.length; i++) if (times[i] >= from && times[i - 1] <= to) best = Math.max(best, times[i] - times[i - 1]);
  return best;
}

const results = [];
const started = new Set();
// Ctrl-C (or a timeout's SIGTERM): the guests' QEMUs are daemonized, so they would outlive us
for (const sig of ['SIGINT', 'SIGTERM'])
  process.on(sig, () => {
    for (const pid of started) try { process.kill(pid, 'SIGKILL'); } catch {}
    fs.removeSync(work);
    if (strategy === 'shared') fs.removeSync(path.join(nfs.instancesDir, 'bare'));
    if (!wasUp) execFileSync('node', [path.join(root, 'scripts/migralab.js'), 'down', topology], { stdio: 'ignore' });
    process.exit(130);
  });
try {
  await fs.remove(work);
  for (const n of [src, dst]) await fs.mkdirp(path.join(work, n.name));
  // The data disk: `data` MiB of random bytes in a `disk` MiB qcow2, like migralab's guests.
  const first = strategy === 'shared' ? path.join(nfs.instancesDir, 'bare') : path.join(work, src.name);
  await fs.mkdirp(first);
  const raw = path.join(first, 'data.raw');
  const fd = fs.openSync(raw, 'w');
  const chunk = Buffer.alloc(4 << 20);
  for (let done = 0; done < dataMiB << 20; done += chunk.length) fs.writeSync(fd, randomFillSync(chunk));
  fs.closeSync(fd);
  await $`qemu-img convert -f raw -O qcow2 ${raw} ${path.join(first, 'disk.qcow2')}`;
  await fs.remove(raw);
  await $`qemu-img resize -q -f qcow2 ${path.join(first, 'disk.qcow2')} ${diskMiB}M`;

  let vm = await start(src, false);
  await configureGuest(src);
  log(`guest up on ${src.name} at ${ip}`);
  let from = src;
  let to = dst;
  for (let r = 0; r < runs; r++) {
    if (strategy === 'block') await $`${inNode(to)} qemu-img create -q -f qcow2 ${path.join(work, to.name, 'disk.qcow2')} ${diskMiB}M`;
    const dest = await start(to, true);
    await dest.q.cmd('migrate-incoming', { uri: `tcp:${to.address}:4444` });
    if (strategy === 'block') {
      await dest.q.cmd('nbd-server-start', { addr: { type: 'inet', data: { host: to.address, port: '10809' } } });
      await dest.q.cmd('block-export-add', { type: 'nbd', id: 'exp0', 'node-name': 'disk0', name: 'disk0', writable: true });
    }
    await vm.q.cmd('migrate-set-capabilities', { capabilities: [{ capability: 'events', state: true }] });
    const ping = pingStart();
    for (let i = 0; ping.times.length < 10; i++) {
      if (i > 1000) throw new Error(`the guest does not answer ping at ${ip}`);
      await sleep(10);
    }
    const t0 = Date.now();
    if (strategy === 'block') {
      await vm.q.cmd('drive-mirror', { 'job-id': 'm0', device: 'disk0', target: `nbd://${to.address}:10809/disk0`, format: 'raw', sync: 'full', mode: 'existing' });
      await vm.q.event((e) => e.event === 'BLOCK_JOB_READY');
    }
    await vm.q.cmd('migrate', { uri: `tcp:${to.address}:4444` });
    await vm.q.event((e) => e.event === 'MIGRATION' && ['completed', 'failed'].includes(e.data.status));
    const t1 = Date.now();
    let info;
    for (let i = 0; i < 100; i++) {
      info = await vm.q.cmd('query-migrate');
      if (info['total-time']) break;
      await sleep(10);
    }
    if (info.status !== 'completed') throw new Error(`migration ${info.status}: ${info['error-desc'] ?? ''}`);
    if (strategy === 'block') {
      await vm.q.cmd('block-job-cancel', { device: 'm0' });
      await vm.q.event((e) => e.event === 'BLOCK_JOB_CANCELLED' || e.event === 'BLOCK_JOB_COMPLETED');
      await dest.q.cmd('nbd-server-stop');
    }
    await sleep(600);
    ping.p.kill('SIGINT');
    await ping.p;
    const run = { durationMs: t1 - t0, maxGapMs: Number(maxGap(ping.times, t0, t1 + 500).toFixed(3)), downtimeMs: info.downtime ?? null, totalTimeMs: info['total-time'] ?? null };
    results.push(run);
    log(`${strategy} ${r + 1}/${runs} ${from.name} -> ${to.name}: ${run.durationMs} ms, largest ping gap ${run.maxGapMs} ms, QEMU downtime ${run.downtimeMs} ms`);
    await stop(vm);
    if (strategy === 'block') await fs.remove(path.join(work, from.name, 'disk.qcow2'));
    vm = dest;
    [from, to] = [to, from];
  }
  await stop(vm);
} finally {
  for (const pid of started) try { process.kill(pid, 'SIGKILL'); } catch {}
  await fs.remove(work).catch(() => {});
  if (strategy === 'shared') await fs.remove(path.join(nfs.instancesDir, 'bare')).catch(() => {});
  if (!wasUp) await $`node ${root}/scripts/migralab.js down ${topology}`;
}
if (argv.json) console.log(JSON.stringify({ strategy, memoryMiB, diskMiB, dataMiB, intervalMs, runs: results }));
