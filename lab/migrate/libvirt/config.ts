/**
 * The libvirt side of the tutorial, as pure text: libvirtd.conf exactly as the tutorial
 * gives it (plus `listen_addr`, so the unauthenticated listener is on the lab address
 * only), the `/etc/default/libvirt-bin` line, qemu.conf for a lab node, the domain XML of
 * a guest, and the parser of `virsh domjobinfo --rawstats`.
 */
import type { DiskSpec } from '../../qemu/argv.ts';
import type { LibvirtJobInfo, MigrationFigures, MigrationSample } from '../types.ts';

/** The TCP port libvirtd listens on with listen_tcp = 1. */
export const LIBVIRT_TCP_PORT = 16509;
/** Where libvirt's destination listens for the migration stream (qemu.conf migration_port_min). */
export const LIBVIRT_MIGRATION_PORTS = { min: 49152, max: 49215 } as const;

/** The tutorial's libvirtd.conf settings (TCP, no TLS, no authentication), on one address only. */
export function libvirtdSettings(listenAddr: string): Record<string, string> {
  return { listen_tls: '0', listen_tcp: '1', auth_tcp: '"none"', listen_addr: `"${listenAddr}"` };
}

/** The tutorial's /etc/libvirt/libvirtd.conf, and the address it listens on. */
export function libvirtdConf(listenAddr: string): string {
  const s = libvirtdSettings(listenAddr);
  return `# /etc/libvirt/libvirtd.conf of a migralab lab node, as the live-migration tutorial sets it:
# TCP without TLS or authentication. This file exists only inside the lab node's private
# /etc/libvirt; the listener is bound to the node's lab address (listen_addr) only.
listen_tls = ${s.listen_tls}
listen_tcp = ${s.listen_tcp}
unix_sock_group = "libvirtd"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
auth_unix_ro = "none"
auth_unix_rw = "none"
auth_tcp = ${s.auth_tcp}
listen_addr = ${s.listen_addr}
`;
}

/** The tutorial's /etc/default/libvirt-bin: libvirtd daemonized (-d) and listening (-l). */
export const LIBVIRT_BIN_DEFAULTS = 'libvirtd_opts="-d -l"\n';

/** qemu.conf settings of a lab node: QEMU as root without confinement (the lab is the boundary), migration on the lab address. */
export function qemuSettings(node: { address: string; name: string }): Record<string, string> {
  return {
    user: '"root"',
    group: '"root"',
    dynamic_ownership: '0',
    remember_owner: '0',
    security_driver: '"none"',
    cgroup_controllers: '[ ]',
    stdio_handler: '"file"',
    namespaces: '[ ]',
    migration_address: `"${node.address}"`,
    migration_host: `"${node.name}"`,
    migration_port_min: String(LIBVIRT_MIGRATION_PORTS.min),
    migration_port_max: String(LIBVIRT_MIGRATION_PORTS.max),
  };
}

/** qemu.conf of a lab node. */
export function qemuConf(node: { address: string; name: string }): string {
  const s = qemuSettings(node);
  return `# /etc/libvirt/qemu.conf of migralab lab node ${node.name}\n${Object.entries(s).map(([k, v]) => `${k} = ${v}`).join('\n')}\n`;
}

/**
 * An existing libvirt configuration file with `settings` in force (pure): every active line
 * that sets one of them is commented out with `# migralab: ` (libvirt takes a key's first
 * occurrence), and the settings follow under `mark`. The same text when all are set already.
 */
export function confWithSettings(text: string, settings: Record<string, string>, mark: string): string {
  const active = (l: string) => /^\s*([A-Za-z_][\w]*)\s*=\s*(.*?)\s*$/.exec(l);
  const lines = text === '' ? [] : text.replace(/\n$/, '').split('\n');
  const set = new Map<string, string>();
  for (const l of lines) {
    const m = active(l);
    if (m && !set.has(m[1]!)) set.set(m[1]!, m[2]!);
  }
  if (Object.entries(settings).every(([k, v]) => set.get(k) === v)) return text;
  // a list value may run over several lines ("cgroup_controllers = [ ...," to "... ]"): all of them go
  let open = false;
  const kept = lines.map((l) => {
    if (open) {
      open = !l.includes(']');
      return `# migralab: ${l}`;
    }
    const m = active(l);
    if (!m || !(m[1]! in settings)) return l;
    open = m[2]!.startsWith('[') && !m[2]!.includes(']');
    return `# migralab: ${l}`;
  });
  return `${[...kept, mark, ...Object.entries(settings).map(([k, v]) => `${k} = ${v}`)].join('\n')}\n`;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/'/g, '&apos;').replace(/"/g, '&quot;');

/** The description of every domain a lab starts: what down looks for on a host whose libvirtd it stops. */
export const domainMark = (lab: string) => `migralab lab ${lab}`;

export interface DomainSpec {
  name: string;
  /** The lab that runs it (its description, domainMark). */
  lab: string;
  uuid: string;
  memoryBytes: number;
  accelerator: 'kvm' | 'tcg';
  /** The emulator libvirt starts (a wrapper for builds that need their own firmware and modules). */
  emulator: string;
  kernel: string;
  initrd: string;
  cmdline: string;
  disks: readonly DiskSpec[];
  mac: string;
  tap: string;
  consoleLog: string;
  ctlSocket: string;
}

function diskXml(d: DiskSpec, i: number): string {
  const target = `<target dev='vd${String.fromCharCode(97 + i)}' bus='virtio'/>`;
  const driver = `<driver name='qemu' type='${d.format}' cache='none'/>`;
  if (d.source.driver === 'file')
    return `    <disk type='file' device='disk'>
      ${driver}
      <source file='${esc(d.source.filename)}'/>
      ${target}
      <alias name='ua-${d.nodeName}'/>
    </disk>`;
  return `    <disk type='network' device='disk'>
      ${driver}
      <source protocol='nfs' name='${esc(d.source.path)}'>
        <host name='${esc(d.source.server)}'/>
      </source>
      ${target}
      <alias name='ua-${d.nodeName}'/>
    </disk>`;
}

/** The domain XML of a guest: the same devices as the qemu driver's command line (lab/qemu/argv.ts). */
export function domainXml(d: DomainSpec): string {
  const kib = Math.floor(d.memoryBytes / 1024);
  return `<domain type='${d.accelerator === 'kvm' ? 'kvm' : 'qemu'}'>
  <name>${esc(d.name)}</name>
  <description>${esc(domainMark(d.lab))}</description>
  <uuid>${d.uuid}</uuid>
  <memory unit='KiB'>${kib}</memory>
  <currentMemory unit='KiB'>${kib}</currentMemory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>${esc(d.kernel)}</kernel>
    <initrd>${esc(d.initrd)}</initrd>
    <cmdline>${esc(d.cmdline)}</cmdline>
  </os>
  <!-- ACPI on, as QEMU's own default (the qemu driver's guests have it too); without it libvirt 9.0 passes -no-acpi, which QEMU 9.0 and later no longer know -->
  <features><acpi/></features>
  <cpu mode='${d.accelerator === 'kvm' ? 'host-passthrough' : 'custom'}'${d.accelerator === 'kvm' ? '' : " match='exact' check='none'"}>${d.accelerator === 'kvm' ? '' : "<model fallback='forbid'>qemu64</model>"}</cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>${esc(d.emulator)}</emulator>
${d.disks.map(diskXml).join('\n')}
    <interface type='ethernet'>
      <mac address='${d.mac}'/>
      <target dev='${esc(d.tap)}' managed='no'/>
      <model type='virtio'/>
    </interface>
    <serial type='file'>
      <source path='${esc(d.consoleLog)}'/>
      <target port='0'/>
    </serial>
    <serial type='unix'>
      <source mode='bind' path='${esc(d.ctlSocket)}'/>
      <target port='1'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
`;
}

/** `virsh domjobinfo --rawstats` → key=value lines ("time_elapsed=1101", "downtime=43", ...). */
export function parseRawStats(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][\w.]*)\s*[=:]\s*(.*?)\s*$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** libvirt's account of a finished migration job from its raw statistics (null: libvirt did not give it). */
export function jobInfo(raw: Record<string, string>, virshMs: number | null): LibvirtJobInfo {
  const n = (k: string) => {
    const v = raw[k];
    if (v === undefined || v === '') return null;
    const x = Number(v);
    return Number.isFinite(x) ? x : null;
  };
  return {
    timeElapsedMs: n('time_elapsed'),
    downtimeMs: n('downtime'),
    dataProcessedBytes: n('data_processed'),
    memoryProcessedBytes: n('memory_processed'),
    diskProcessedBytes: n('disk_processed'),
    iterations: n('memory_iteration'),
    virshMs,
    raw,
  };
}

/** A domain's disks as libvirt says it runs them (virsh dumpxml), for `disk.source`/`disk.destination`. */
export function disksOfDomainXml(xml: string): { target: string; driver: 'file' | 'nfs'; filename: string }[] {
  const out: { target: string; driver: 'file' | 'nfs'; filename: string }[] = [];
  for (const m of xml.matchAll(/<disk type='(file|network)'[\s\S]*?<\/disk>/g)) {
    const block = m[0];
    const target = /<target dev='([^']+)'/.exec(block)?.[1] ?? '';
    if (m[1] === 'file') out.push({ target, driver: 'file', filename: /<source file='([^']+)'/.exec(block)?.[1] ?? '' });
    else {
      const name = /<source protocol='nfs' name='([^']+)'/.exec(block)?.[1] ?? '';
      const host = /<host name='([^']+)'/.exec(block)?.[1] ?? '';
      out.push({ target, driver: 'nfs', filename: `nfs://${host}${name}` });
    }
  }
  return out;
}

/**
 * One look at libvirt's job statistics (`virsh domjobinfo --rawstats`) as a timeline sample;
 * null when no migration job is running. A block migration is in its disk copy until
 * libvirt reports memory processed.
 */
export function jobSample(raw: Record<string, string>, t: number, block: boolean): { sample: MigrationSample; memProcessed: number; diskTotal: number | null; memTotal: number | null } | null {
  if (!(raw.type === '2' || raw.type === 'unbounded' || raw.memory_total !== undefined)) return null;
  const n = (k: string) => (raw[k] !== undefined && raw[k] !== '' ? Number(raw[k]) : null);
  const memProcessed = n('memory_processed') ?? 0;
  const inMirror = block && memProcessed === 0;
  const pageSize = n('memory_page_size') ?? 4096;
  return {
    sample: {
      t,
      phase: inMirror ? 'mirror' : 'ram',
      diskDone: n('disk_processed'),
      diskRemaining: n('disk_remaining'),
      ramTransferred: n('memory_processed'),
      ramRemaining: n('memory_remaining'),
      dirtyBytesPerSec: n('memory_dirty_rate') !== null ? n('memory_dirty_rate')! * pageSize : null,
      mbps: n('memory_bps') !== null ? (n('memory_bps')! * 8) / 1e6 : null,
      iterations: n('memory_iteration'),
    },
    memProcessed,
    diskTotal: n('disk_total'),
    memTotal: n('memory_total'),
  };
}

/** QEMU's figures as libvirt passes them on (its completed job): no total time, no event downtime (libvirt owns QMP). */
export function qemuFiguresOfJob(raw: Record<string, string>, lv: LibvirtJobInfo, block: boolean, samples: readonly MigrationSample[]): MigrationFigures['qemu'] {
  const setup = raw.setup_time !== undefined && raw.setup_time !== '' ? Number(raw.setup_time) : null;
  return {
    totalTimeMs: null,
    downtimeMs: lv.downtimeMs,
    setupTimeMs: setup,
    ramBytes: lv.memoryProcessedBytes,
    diskBytes: block ? lv.diskProcessedBytes : 0,
    iterations: lv.iterations,
    dirtyBytesPerSecMax: samples.reduce<number | null>((m, x) => (x.dirtyBytesPerSec !== null && (m === null || x.dirtyBytesPerSec > m) ? x.dirtyBytesPerSec : m), null),
    eventDowntimeMs: null,
  };
}
