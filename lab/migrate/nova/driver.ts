/**
 * The `nova` driver: the tutorial's own path, in a lab with `stack: openstack`
 * (lab/stack/openstack/). A guest is a nova server: a neutron port with the guest's fixed
 * IP and MAC, booted through the compute API on a named host, its identity on nova's vfat
 * config drive (user_data), its control shell on the second serial port that nova binds on
 * the node's lab address. A migration is
 *
 *   POST /servers/{id}/action {"os-migrateLive": {"host": DEST, "block_migration": true|false}}   (compute 2.80)
 *
 * followed through `/servers/{id}/migrations/{id}` (nova's memory and disk counters), the
 * server's status and host, and, underneath, libvirt's job on the source node
 * (`virsh domjobinfo --rawstats`, its job-completed event). The duration is nova's whole
 * operation, the request to the server ACTIVE on the destination (`nova.apiToActiveMs`,
 * what Rally measures); libvirt's migration inside it is `libvirt.timeElapsedMs`.
 *
 * Shared storage under nova needs the instances directory on kernel NFS on both computes;
 * where the kernel has no NFS client (this machine kind) shared cells are skipped, saying
 * so: a bind-mounted directory never stands in for NFS.
 */
import { join } from 'node:path';
import { mkdir, readFile } from 'node:fs/promises';
import { MigralabError } from '../../errors.ts';
import type { LocalNode } from '../../exec/local.ts';
import { run } from '../../exec/run.ts';
import { kernelCmdline } from '../../image/build.ts';
import type { LabNode, StartedLab } from '../../provision/provider.ts';
import { GuestShell, waitForGuestReady } from '../../qemu/guest-shell.ts';
import { consoleTail } from '../../qemu/process.ts';
import { adminApi } from '../../stack/openstack/stack.ts';
import { OpenstackApiError, type OpenstackApi } from '../../stack/openstack/api.ts';
import { waitFor } from '../../time/wait.ts';
import { bootTimeoutFor } from '../qemu/driver.ts';
import { jobInfo, parseRawStats, qemuFiguresOfJob } from '../libvirt/config.ts';
import { JobWatch } from '../libvirt/job.ts';
import { libvirtVersion } from '../libvirt/daemon.ts';
import { domainState, signalDomain, VIRSH } from '../libvirt/domain.ts';
import {
  MigrationFailed,
  type DiskLocation,
  type GuestSpec,
  type Instance,
  type LaunchOptions,
  type MigrateOptions,
  type MigrationDriver,
  type MigrationEvents,
  type MigrationOutcome,
  type NovaMigrationRecord,
} from '../types.ts';
import {
  COMPUTE_MICROVERSION,
  computeHeaders,
  FAILED,
  FINAL,
  migrateLiveBody,
  novaErrorMessage,
  phaseSpans,
  rootDiskOfDomainXml,
  serialPortsOfDomainXml,
  serverBody,
  SERIAL_PORTS_PROPERTY,
  type NovaMigration,
  type NovaServer,
} from './api.ts';

const POLL_MS = 200;
const MiB = 1024 ** 2;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Why shared storage cannot run under nova on a lab whose nodes cannot mount kernel NFS. */
export function sharedUnderNovaReason(lab: StartedLab): string | null {
  if (lab.info.nfs.client === 'kernel') return 'shared storage under nova needs the instances directory on NFS on both computes (the tutorial\'s mount -t nfs controller:/opt/stack/data/nova/instances): not set up by this lab profile yet';
  return `shared storage under nova needs nova's instances directory on kernel NFS on both computes (the tutorial's mount -t nfs controller:/opt/stack/data/nova/instances), and this kernel has no NFS client (the lab's NFS client is ${lab.info.nfs.client}); the nova profile runs block migration only, and a bind-mounted directory would not be NFS`;
}

/** One nova server, seen from whichever node it runs on now. */
export interface Server {
  id: string;
  port: string;
  domain: string;
  /** The compute host nova last said it runs on. */
  host: string;
  deleted: boolean;
  /** The id of the last migration of this server that finished (a later request's record has a higher one). */
  lastMigrationId: number;
}

export class NovaDriver implements MigrationDriver {
  readonly name = 'nova' as const;
  private readonly servers = new Map<string, Server>();
  private serial: Promise<unknown> = Promise.resolve();
  private readonly flavors = new Map<string, string>();
  private readonly images = new Map<number, string>();

  private constructor(
    private readonly lab: StartedLab,
    readonly api: OpenstackApi,
    private readonly progress: (m: string) => void,
  ) {}

  static async create(lab: StartedLab, progress: (m: string) => void = () => {}): Promise<NovaDriver> {
    if (lab.info.stack?.kind !== 'openstack')
      throw new MigralabError('USAGE', `the nova driver needs a lab with the openstack profile (stack: openstack in its topology, e.g. scenarios/topologies/devstack.lab.yaml); lab ${lab.plan.lab} has none`);
    const api = await adminApi(lab.plan);
    await api.authenticate();
    lab.info.environment.libvirtVersion ??= await libvirtVersion(lab.computes[0]!);
    return new NovaDriver(lab, api, progress);
  }

  refuses(guest: GuestSpec): string | null {
    if (guest.build.id !== 'system') return `nova starts the nodes' own QEMU (qemu-system-x86_64, libvirt's emulator), not build ${guest.build.id}: hypervisor.qemu is system under nova`;
    return guest.strategy === 'shared' ? sharedUnderNovaReason(this.lab) : null;
  }

  private compute<T>(method: string, path: string, body?: unknown, ok?: (s: number) => boolean) {
    return this.api.call<T>('compute', method, path, body, { headers: computeHeaders, ok });
  }

  /** One at a time: flavors and images are made once, by the first guest that needs them. */
  private once<T>(f: () => Promise<T>): Promise<T> {
    const p = this.serial.then(f, f);
    this.serial = p.catch(() => {});
    return p;
  }

  private flavorFor(g: GuestSpec): Promise<string> {
    const mem = Math.ceil(g.memoryBytes / MiB);
    const name = `migralab-${mem}m`;
    return this.once(async () => {
      const known = this.flavors.get(name);
      if (known) return known;
      const list = await this.compute<{ flavors: { id: string; name: string }[] }>('GET', '/flavors/detail?is_public=None');
      let id = list.body.flavors.find((f) => f.name === name)?.id;
      // disk 0: the root disk is the image's own size (the scenario's guest.disk)
      id ??= (await this.compute<{ flavor: { id: string } }>('POST', '/flavors', { flavor: { name, ram: mem, vcpus: 1, disk: 0 } })).body.flavor.id;
      this.flavors.set(name, id);
      return id;
    });
  }

  /** A root-disk image of the guest's disk size: an empty qcow2 that boots the lab's kernel and initramfs, with two serial ports. */
  private imageFor(g: GuestSpec): Promise<string> {
    return this.once(async () => {
      const known = this.images.get(g.diskBytes);
      if (known) return known;
      const name = `migralab-guest-${Math.ceil(g.diskBytes / MiB)}m`;
      const found = await this.api.call<{ images: { id: string }[] }>('image', 'GET', `/v2/images?name=${encodeURIComponent(name)}`);
      let id = found.body.images[0]?.id;
      if (!id) {
        const res = this.lab.info.stack!.resources.images;
        const dir = join(this.lab.plan.labDir, 'openstack', 'images');
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const file = join(dir, `${name}.qcow2`);
        await run(['qemu-img', 'create', '-q', '-f', 'qcow2', file, String(g.diskBytes)]);
        const r = await this.api.call<{ id: string }>('image', 'POST', '/v2/images', {
          name,
          disk_format: 'qcow2',
          container_format: 'bare',
          visibility: 'public',
          kernel_id: res.kernel,
          ramdisk_id: res.ramdisk,
          os_command_line: kernelCmdline(),
          [SERIAL_PORTS_PROPERTY]: '2',
        });
        await this.api.call('image', 'PUT', `/v2/images/${r.body.id}/file`, await readFile(file), { headers: { 'Content-Type': 'application/octet-stream' } });
        id = r.body.id;
      }
      this.images.set(g.diskBytes, id);
      return id;
    });
  }

  /** The guest's port: its fixed IP and MAC on the lab network (a leftover port with that address, not bound to a server, is removed first). */
  private async portFor(g: GuestSpec): Promise<string> {
    const res = this.lab.info.stack!.resources;
    const old = await this.api.call<{ ports: { id: string; device_id: string }[] }>('network', 'GET', `/v2.0/ports?fixed_ips=ip_address%3D${g.ip}`);
    for (const p of old.body.ports) {
      if (p.device_id) throw new MigralabError('LAB', `address ${g.ip} is already the port of server ${p.device_id} in nova`);
      await this.api.call('network', 'DELETE', `/v2.0/ports/${p.id}`);
    }
    const r = await this.api.call<{ port: { id: string } }>('network', 'POST', '/v2.0/ports', {
      port: { name: g.name, network_id: res.network, mac_address: g.mac, fixed_ips: [{ subnet_id: res.subnet, ip_address: g.ip }], port_security_enabled: false },
    });
    return r.body.port.id;
  }

  async server(id: string): Promise<NovaServer | null> {
    const r = await this.compute<{ server: NovaServer }>('GET', `/servers/${id}`, undefined, (s) => (s >= 200 && s < 300) || s === 404);
    return r.status === 404 ? null : r.body.server;
  }

  async launch(guest: GuestSpec, node: LabNode, opts: LaunchOptions = {}): Promise<Instance> {
    const t0 = performance.now();
    await this.destroy(guest);
    const [flavor, image] = await Promise.all([this.flavorFor(guest), this.imageFor(guest)]);
    const port = await this.portFor(guest);
    const tBoot = performance.now();
    let created: { id: string };
    try {
      created = (await this.compute<{ server: { id: string } }>('POST', '/servers', serverBody(guest, { image, flavor, port, host: node.name, lab: this.lab.plan.lab }))).body.server;
    } catch (e) {
      await this.api.call('network', 'DELETE', `/v2.0/ports/${port}`, undefined, { ok: () => true }).catch(() => {});
      throw new MigralabError('LAB', `nova did not accept ${guest.name}: ${e instanceof OpenstackApiError ? novaErrorMessage(e.body) : (e as Error).message}`);
    }
    const srv: Server = { id: created.id, port, domain: '', host: node.name, deleted: false, lastMigrationId: 0 };
    this.servers.set(guest.name, srv);
    const timeoutMs = opts.bootTimeoutMs ?? bootTimeoutFor(guest) + 60_000;
    let s: NovaServer | null = null;
    const until = performance.now() + timeoutMs;
    try {
      for (;;) {
        if (opts.signal?.aborted) throw new MigralabError('INTERRUPTED', `interrupted while ${guest.name} booted through nova`);
        s = await this.server(srv.id);
        if (!s) throw new MigralabError('LAB', `nova no longer knows server ${guest.name} (${srv.id})`);
        if (s?.status === 'ERROR') throw new MigralabError('LAB', `nova put ${guest.name} in ERROR: ${s.fault?.message ?? 'no fault given'}`);
        if (s?.status === 'ACTIVE') break;
        if (performance.now() > until) throw new MigralabError('LAB', `${guest.name} was not ACTIVE in nova within ${timeoutMs} ms (status ${s?.status ?? 'gone'})`);
        await sleep(250);
      }
      const activeMs = performance.now() - tBoot;
      srv.domain = s['OS-EXT-SRV-ATTR:instance_name'] ?? '';
      srv.host = s['OS-EXT-SRV-ATTR:host'] ?? node.name;
      if (srv.host !== node.name) throw new MigralabError('LAB', `nova booted ${guest.name} on ${srv.host}, not on ${node.name} as asked`);
      const inst = new NovaInstance(this, guest, node, srv);
      const shell = await waitForGuestReady(`${guest.name}'s second serial port`, { timeoutMs: Math.max(10_000, until - performance.now()), signal: opts.signal, open: () => inst.openControl() });
      try {
        // the data a block migration copies, written by the guest into its own root disk
        const mib = Math.floor(guest.diskDataBytes / MiB);
        if (mib > 0) {
          const w = await shell.exec(`dd if=/dev/urandom of=/dev/vda bs=1M count=${mib} oflag=direct conv=fsync 2>&1 && sync`, { timeoutMs: 120_000 });
          if (w.status !== 0) throw new MigralabError('LAB', `guest ${guest.name}: writing its ${mib} MiB of data failed: ${w.output.trim()}`);
        }
      } finally {
        shell.close();
      }
      inst.boot = { mode: 'cold', ms: performance.now() - t0, snapshotMadeMs: null, note: `nova: POST /servers to ACTIVE on ${node.name} in ${Math.round(activeMs)} ms` };
      return inst;
    } catch (e) {
      const tail = srv.domain ? await new NovaInstance(this, guest, node, srv).consoleTail(8) : '(no domain)';
      const left = await this.destroy(guest).then(
        () => '',
        (x: Error) => `; removing it failed too: ${x.message}`,
      );
      if (e instanceof MigralabError && e.code === 'INTERRUPTED') throw e;
      throw new MigralabError('LAB', `guest ${guest.name} did not come up under nova on ${node.name}: ${(e as Error).message} (console: ${tail})${left}`);
    }
  }

  async releaseNode(): Promise<void> {
    // nova cleans the source itself (its post-live-migration step)
  }

  /**
   * Deletes the server (waiting until nova has let it go), then whatever of it a compute's
   * libvirt still runs, then its port; also a leftover server or port of the guest's name.
   * Every step is tried; what failed is thrown together at the end.
   */
  async destroy(guest: GuestSpec): Promise<void> {
    const known = this.servers.get(guest.name);
    const failed: string[] = [];
    const step = async (what: string, f: () => Promise<unknown>) => {
      try {
        await f();
      } catch (e) {
        failed.push(`${what}: ${(e as Error).message}`);
      }
    };
    const ids = new Set<string>(known && !known.deleted ? [known.id] : []);
    const domains = new Set<string>(known?.domain ? [known.domain] : []);
    await step('listing servers', async () => {
      const byName = await this.compute<{ servers: { id: string; name: string }[] }>('GET', `/servers?name=${encodeURIComponent(`^${guest.name}$`)}&all_tenants=1`);
      for (const x of byName.body.servers) ids.add(x.id);
    });
    for (const id of ids)
      await step(`deleting server ${id}`, async () => {
        const x = await this.server(id);
        const dom = x?.['OS-EXT-SRV-ATTR:instance_name'];
        if (dom) domains.add(dom);
        await this.compute('DELETE', `/servers/${id}`, undefined, (st) => (st >= 200 && st < 300) || st === 404);
        await waitFor(`server ${guest.name} to be deleted by nova`, async () => (await this.server(id)) === null, { timeoutMs: 60_000, intervalMs: 250 });
      });
    // a domain nova no longer accounts for (a migration that left the guest where nova does not say it is)
    for (const dom of domains)
      for (const n of this.lab.computes)
        await step(`removing domain ${dom} from ${n.name}`, async () => {
          if ((await domainState(n, dom)) === 'gone') return;
          await n.transport.run([...VIRSH, 'destroy', dom], { check: false });
          await n.transport.run([...VIRSH, 'undefine', '--nvram', dom], { check: false });
          if ((await domainState(n, dom)) !== 'gone') throw new Error('still defined');
        });
    await step('deleting its port', async () => {
      const ports = new Set<string>(known ? [known.port] : []);
      const byName = await this.api.call<{ ports: { id: string }[] }>('network', 'GET', `/v2.0/ports?name=${encodeURIComponent(guest.name)}`);
      for (const p of byName.body.ports) ports.add(p.id);
      for (const p of ports) await this.api.call('network', 'DELETE', `/v2.0/ports/${p}`, undefined, { ok: (st) => (st >= 200 && st < 300) || st === 404 });
    });
    if (known) known.deleted = true;
    this.servers.delete(guest.name);
    if (failed.length) throw new MigralabError('LAB', `removing ${guest.name} from nova: ${failed.join('; ')}`);
  }

  async migrate(instance: Instance, destination: LabNode, options: MigrateOptions, events: MigrationEvents = {}): Promise<MigrationOutcome> {
    if (!(instance instanceof NovaInstance)) throw new MigralabError('USAGE', `the nova driver cannot migrate a ${instance.driver} instance`);
    const guest = instance.guest;
    const source = instance.node;
    const srv = instance.srv;
    const notes: string[] = [];
    const record: NovaMigrationRecord = {
      microversion: COMPUTE_MICROVERSION,
      serverId: srv.id,
      migrationId: null,
      blockMigration: guest.strategy === 'block',
      diskOverCommit: null,
      apiToActiveMs: null,
      requestId: null,
      phases: [],
      phaseSpans: [],
      status: null,
      fault: null,
      location: null,
    };
    notes.push(`nova: disk_over_commit is not recorded: os-migrateLive has no such field since compute microversion 2.25, and this driver uses ${COMPUTE_MICROVERSION}`);
    const ignored = tunablesIgnored(options);
    if (ignored.length) notes.push(`nova: ${ignored.join(', ')} not applied: nova takes its live-migration settings from nova.conf, not per request`);
    notes.push('nova: prepareMs is null: nova prepares the destination inside its own operation (nova.phases: preparing), within durationMs');
    const completedEvent = source.transport.stream([...VIRSH, 'event', '--domain', srv.domain, '--event', 'job-completed', '--timeout', String(Math.ceil(options.timeoutMs / 1000) + 30)]);
    let eventText = '';
    completedEvent.stdout.on('data', (b: Buffer) => (eventText += b.toString('utf8')));
    const body = migrateLiveBody(guest, destination.name);
    const t0 = performance.now();
    const startedAt = performance.timeOrigin + t0;
    const since = () => performance.now() - t0;
    const watch = new JobWatch(guest.strategy === 'block', events, false);
    /** When libvirt's job on the source was first seen gone, after it had been seen (ms after the request). */
    let jobEndedAt: number | null = null;
    let firstJobAt: number | null = null;
    let apiErrors = 0;
    let lastApiError = '';
    /** A poll's call that failed (nova-api busy, a 5xx): counted, and tried again next round. */
    const soft = <T>(p: Promise<T>): Promise<T | undefined> =>
      p.catch((e: Error) => {
        apiErrors++;
        lastApiError = e.message;
        return undefined;
      });
    const seen = (status: string) => {
      if (record.phases.at(-1)?.status !== status) record.phases.push({ status, atMs: since() });
    };
    /** This request's migration in nova's list (never an earlier one of this server's). */
    const ours = (ms: NovaMigration[]) => (record.migrationId !== null ? ms.find((m) => m.id === record.migrationId) : ms.filter((m) => m.id > srv.lastMigrationId).sort((a, b) => a.id - b.id)[0]);
    const listed = async () => ours((await this.compute<{ migrations: NovaMigration[] }>('GET', `/os-migrations?instance_uuid=${srv.id}&migration_type=live-migration`)).body.migrations);
    try {
      events.request?.(`POST /servers/${srv.id}/action ${JSON.stringify(body)}   (compute API ${COMPUTE_MICROVERSION}, to nova-api on ${this.lab.info.stack!.controller})`);
      const r = await this.compute('POST', `/servers/${srv.id}/action`, body, () => true);
      record.requestId = String(r.headers['x-openstack-request-id'] ?? r.headers['x-compute-request-id'] ?? '') || null;
      if (r.status !== 202) {
        record.status = `refused (HTTP ${r.status})`;
        record.fault = novaErrorMessage(r.body);
        throw new MigrationFailed(`nova refused the live migration to ${destination.name}: HTTP ${r.status}: ${record.fault}`, { node: source.name, status: 'unknown' }, 'refused', { detectedAfterMs: since() });
      }
      const deadline = t0 + options.timeoutMs;
      let last: NovaServer | null | undefined;
      let mig: NovaMigration | undefined;
      for (;;) {
        if (options.signal?.aborted) {
          await this.abort(srv, record.migrationId ?? (await soft(listed()))?.id ?? null);
          throw new MigralabError('INTERRUPTED', 'interrupted during the migration');
        }
        if (performance.now() > deadline) {
          const detectedAfterMs = since();
          const id = record.migrationId ?? (await soft(listed()))?.id ?? null;
          const aborted = await this.abort(srv, id);
          throw new MigrationFailed(`timed out after ${options.timeoutMs} ms (nova's migration ${id ?? '(not seen)'} was ${record.phases.at(-1)?.status ?? 'not reported'}); ${aborted}`, { node: source.name, status: 'unknown' }, 'timeout', { detectedAfterMs });
        }
        const [s, inProgress, job] = await Promise.all([
          soft(this.server(srv.id)),
          record.migrationId === null
            ? soft(this.compute<{ migrations: NovaMigration[] }>('GET', `/servers/${srv.id}/migrations`).then((x) => ours(x.body.migrations)))
            : soft(this.compute<{ migration: NovaMigration }>('GET', `/servers/${srv.id}/migrations/${record.migrationId}`, undefined, (st) => (st >= 200 && st < 300) || st === 404).then((x) => (x.status === 404 ? undefined : x.body.migration))),
          source.transport.run([...VIRSH, 'domjobinfo', srv.domain, '--rawstats'], { check: false, timeoutMs: 10_000 }),
        ]);
        const t = since();
        if (s !== undefined) last = s;
        if (inProgress) {
          mig = inProgress;
          record.migrationId ??= inProgress.id;
          seen(inProgress.status);
          if (inProgress.disk_total_bytes && (inProgress.memory_processed_bytes ?? 0) === 0) events.progress?.({ phase: 'mirror', done: inProgress.disk_processed_bytes ?? 0, total: inProgress.disk_total_bytes });
          else if (inProgress.memory_total_bytes) events.progress?.({ phase: 'ram', done: inProgress.memory_processed_bytes ?? 0, total: inProgress.memory_total_bytes });
        }
        const raw = parseRawStats(job.stdout);
        if (watch.see(raw, t)) firstJobAt ??= t;
        // ended: libvirt answered, and has no job (or no domain) here any more
        else if (watch.samples.length > 0 && (job.exitCode === 0 || /failed to get domain|not found/i.test(job.stderr))) jobEndedAt ??= t;
        if (s === null) break; // nova no longer knows the server
        if (s?.status === 'ERROR') break;
        const settled = s && s.status === 'ACTIVE' && !s['OS-EXT-STS:task_state'];
        if (settled && s['OS-EXT-SRV-ATTR:host'] === destination.name) {
          record.apiToActiveMs = t;
          break;
        }
        // back to ACTIVE on the source with no task: nova gave up; its migration record says so
        if (settled && s['OS-EXT-SRV-ATTR:host'] === source.name && !inProgress) {
          const m = await soft(listed());
          if (m && FAILED.has(m.status)) {
            mig = m;
            record.migrationId ??= m.id;
            break;
          }
        }
        await sleep(POLL_MS);
      }
      // nova's record of the migration until it is final (the server is ACTIVE on the
      // destination before nova's source side marks it completed): GET /os-migrations
      let final: NovaMigration | undefined = mig;
      const until = performance.now() + 60_000;
      for (;;) {
        if (options.signal?.aborted) throw new MigralabError('INTERRUPTED', 'interrupted while nova finished the migration');
        final = (await soft(listed())) ?? final;
        if (final) {
          record.migrationId ??= final.id;
          seen(final.status);
        }
        if ((final && FINAL.has(final.status)) || performance.now() > until) break;
        await sleep(POLL_MS);
      }
      if (final) {
        record.status = final.status;
        record.novaTimes = { createdAt: final.created_at ?? null, updatedAt: final.updated_at ?? null };
        srv.lastMigrationId = Math.max(srv.lastMigrationId, final.id);
        if (!FINAL.has(final.status)) notes.push(`nova: its migration ${final.id} was still ${final.status} 60 s after the server's last change: nova.status is not final`);
      } else notes.push('nova: no migration record of this request was seen');
      if (apiErrors) notes.push(`nova: ${apiErrors} poll calls failed and were tried again (last: ${lastApiError.slice(0, 200)})`);
      record.phaseSpans = phaseSpans(record.phases);
      if (record.apiToActiveMs === null) {
        record.fault = last?.fault?.message ?? (await this.actionFault(srv.id, record.requestId).catch(() => null));
        const reached = record.phases.some((p) => p.status === 'preparing' || p.status === 'running' || p.status === 'post-migrating');
        throw new MigrationFailed(
          `nova's live migration ${record.migrationId ?? ''} ended ${record.status ?? last?.status ?? 'without a status'}${record.fault ? `: ${record.fault}` : ''}${last?.status === 'ERROR' ? '; nova put the server in ERROR (reset it, e.g. openstack server set --state active, before nova migrates it again)' : ''}`,
          { node: source.name, status: 'unknown' },
          reached ? 'unknown' : 'refused',
          { detectedAfterMs: since() },
        );
      }
      if (record.status && FAILED.has(record.status)) notes.push(`nova: the server is ACTIVE on ${destination.name} but its migration record says ${record.status}`);
      const durationMs = record.apiToActiveMs;
      const { samples, mirrorReady } = watch;
      await Promise.race([completedEvent.exited, sleep(3000)]);
      const rawDone = parseRawStats(eventText);
      const lv = jobInfo(rawDone, null);
      if (rawDone.time_elapsed === undefined) notes.push(`libvirt's job-completed event was not seen on ${source.name}: libvirt.* and QEMU's figures are null`);
      notes.push(`nova drove this migration: the duration is nova's whole operation (the os-migrateLive request to the server ACTIVE on ${destination.name}, nova.apiToActiveMs); libvirt's migration inside it is libvirt.timeElapsedMs`);
      notes.push("nova: marks are polled (every 200 ms, besides nova's API calls): the disk copy from libvirt's first job sample to its first memory sample, the end from libvirt's job gone on the source, the clean-up until nova's migration completed");
      notes.push('nova: the destination running time and QEMU event downtime are not observed (libvirt owns the QMP connection)');
      srv.host = destination.name;
      if (jobEndedAt === null) notes.push(`libvirt's job on ${source.name} was not seen ending: marks.completed is null`);
      const ramStart = samples.find((x) => x.phase === 'ram')?.t ?? null;
      return {
        instance: new NovaInstance(this, guest, destination, srv),
        figures: {
          durationMs,
          prepareMs: null,
          mirrorMs: mirrorReady !== null && firstJobAt !== null && guest.strategy === 'block' ? mirrorReady - firstJobAt : null,
          startedAt,
          completedAt: startedAt + durationMs,
          samples,
          marks: { mirrorReady, ramStart, postcopyStart: null, completed: jobEndedAt, destRunning: null, cleanedUp: record.phases.find((p) => p.status === 'completed')?.atMs ?? null },
          tunables: { maxBandwidthBytesPerSec: null, downtimeLimitMs: null, multifdChannels: null, autoConverge: false, postcopy: false, tls: false },
          qemu: qemuFiguresOfJob(rawDone, lv, guest.strategy === 'block', samples),
          libvirt: lv,
          nova: record,
          notes,
        },
      };
    } catch (e) {
      record.phaseSpans = phaseSpans(record.phases);
      if (e instanceof MigralabError && e.code === 'INTERRUPTED') throw e;
      // where the guest is: libvirt's view decides (nova's host may lag, or disagree after an error)
      record.location ??= await this.locate(srv.id).catch(() => null);
      const where = record.location;
      const live = (n: LabNode) => /^(running|paused)$/.test(where?.hypervisor[n.name] ?? '');
      const on = [source, destination].find(live) ?? this.lab.computes.find(live) ?? this.lab.computes.find((n) => n.name === where?.nova) ?? source;
      const status = where?.hypervisor[on.name] ?? (await instance.status().catch(() => 'unknown'));
      srv.host = on.name;
      const kind = e instanceof MigrationFailed ? e.kind : 'unknown';
      const msg = e instanceof MigrationFailed ? e.message : `nova's live migration failed: ${(e as Error).message}`;
      const disagree = where && where.nova !== on.name ? `; nova says it is on ${where.nova ?? 'no host'}` : '';
      throw new MigrationFailed(`${msg}; the guest is ${status === 'running' ? 'still running' : `in state ${status}`} on ${on.name} (libvirt)${disagree}`, { node: on.name, status }, kind, {
        cause: e,
        detectedAfterMs: e instanceof MigrationFailed && e.detectedAfterMs !== null ? e.detectedAfterMs : since(),
        nova: record,
        ...(on.name !== source.name ? { landed: new NovaInstance(this, guest, on, srv) } : {}),
      });
    } finally {
      completedEvent.kill();
    }
  }

  /** Where the server is: nova's host, and the domain's state on every compute (libvirt's view). */
  async locate(id: string): Promise<{ nova: string | null; hypervisor: Record<string, string> }> {
    const s = await this.server(id);
    const domain = s?.['OS-EXT-SRV-ATTR:instance_name'];
    const hypervisor: Record<string, string> = {};
    for (const n of this.lab.computes) hypervisor[n.name] = domain ? await domainState(n, domain) : 'gone';
    return { nova: s?.['OS-EXT-SRV-ATTR:host'] ?? null, hypervisor };
  }

  /** The failure nova recorded on the request's instance action (its events' tracebacks end with the message). */
  private async actionFault(id: string, requestId: string | null): Promise<string | null> {
    if (!requestId) return null;
    const r = await this.compute<{ instanceAction: { message?: string | null; events?: { event: string; result?: string; traceback?: string | null; details?: string | null }[] } }>(
      'GET',
      `/servers/${id}/os-instance-actions/${requestId}`,
      undefined,
      () => true,
    );
    const a = r.body?.instanceAction;
    if (!a) return null;
    const bad = (a.events ?? []).filter((e) => e.result && e.result !== 'Success');
    const tb = bad.map((e) => `${e.event}: ${e.details ?? (e.traceback ?? '').trim().split('\n').at(-1) ?? e.result}`).join('; ');
    return tb || a.message || null;
  }

  /** Asks nova to abort a running live migration (`DELETE /servers/{id}/migrations/{id}`) and waits for the server to settle; says how that went. */
  private async abort(srv: Server, migrationId: number | null): Promise<string> {
    if (migrationId === null) return 'nova listed no migration to abort';
    const r = await this.compute('DELETE', `/servers/${srv.id}/migrations/${migrationId}`, undefined, () => true).catch((e: Error) => e);
    const said = r instanceof Error ? `asking nova to abort it failed: ${r.message}` : r.status === 202 ? 'nova accepted the abort' : `nova refused the abort (HTTP ${r.status}: ${novaErrorMessage(r.body)})`;
    await waitFor(
      `nova to settle the server after the abort`,
      async () => {
        const s = await this.server(srv.id);
        return !s || (!s['OS-EXT-STS:task_state'] && s.status !== 'MIGRATING');
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    ).catch(() => {});
    return said;
  }
}

function tunablesIgnored(o: MigrateOptions): string[] {
  const t = o.tunables;
  const out: string[] = [];
  if (t.maxBandwidth !== null) out.push('tunables.maxBandwidth');
  if (t.downtimeLimitMs !== undefined) out.push('tunables.downtimeLimitMs');
  if (t.multifdChannels > 0) out.push('tunables.multifdChannels');
  if (t.autoConverge) out.push('tunables.autoConverge');
  if (t.postcopy) out.push('tunables.postcopy');
  return out;
}

/** A nova server as seen on one node: libvirt's domain there, the control shell on the node's serial listener. */
export class NovaInstance implements Instance {
  readonly driver = 'nova' as const;
  boot?: Instance['boot'];
  constructor(
    private readonly d: NovaDriver,
    readonly guest: GuestSpec,
    readonly node: LabNode,
    readonly srv: Server,
  ) {}

  private async xml(): Promise<string> {
    const r = await this.node.transport.run([...VIRSH, 'dumpxml', this.srv.domain], { check: false });
    if (r.exitCode !== 0) throw new MigralabError('LAB', `no domain ${this.srv.domain} (${this.guest.name}) on ${this.node.name}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** A connection to the guest's second serial port, where nova's domain on this node listens. */
  async openControl() {
    const { ports } = serialPortsOfDomainXml(await this.xml());
    const ctl = ports[1];
    if (!ctl) throw new MigralabError('LAB', `nova's domain ${this.srv.domain} on ${this.node.name} has no second TCP serial port (image property ${SERIAL_PORTS_PROPERTY}, [serial_console] enabled)`);
    const t = this.node.transport as LocalNode;
    if (typeof t.connectTcp !== 'function') throw new MigralabError('USAGE', 'the nova driver runs on the local lab only');
    return t.connectTcp(ctl.host, ctl.port);
  }

  status(): Promise<string> {
    return domainState(this.node, this.srv.domain);
  }

  async gone(): Promise<boolean> {
    const s = await this.status();
    return s === 'gone' || s === 'shutdown';
  }

  async disk(): Promise<DiskLocation> {
    const file = rootDiskOfDomainXml(await this.xml());
    return { driver: file ? 'file' : 'unknown', filename: file ?? '', onExport: false };
  }

  shell(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<GuestShell> {
    return GuestShell.connect(`${this.guest.name}'s second serial port on ${this.node.name}`, { timeoutMs: opts.timeoutMs ?? 10_000, signal: opts.signal, open: () => this.openControl() });
  }

  async consoleTail(lines: number): Promise<string> {
    const log = await this.xml()
      .then((x) => serialPortsOfDomainXml(x).log)
      .catch(() => null);
    if (!log) return '(no console log)';
    return consoleTail(this.node.transport, log, lines);
  }

  /** Deletes the server through nova when it runs here (a source nova already left is not touched). */
  async stop(): Promise<void> {
    if (this.srv.deleted || this.srv.host !== this.node.name) return;
    await this.d.destroy(this.guest);
  }

  kill(): Promise<void> {
    return signalDomain(this.node, this.srv.domain, 'SIGKILL');
  }

  freeze(frozen: boolean): Promise<void> {
    return signalDomain(this.node, this.srv.domain, frozen ? 'SIGSTOP' : 'SIGCONT');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
