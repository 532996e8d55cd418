/**
 * The seam between the scenario runner and the hypervisor stack: an `Instance` (a guest
 * running on one node) and a `MigrationDriver` that starts instances and moves them.
 * Drivers: `qemu` (QMP directly, lab/migrate/qemu/), `libvirt` (virsh over qemu+tcp,
 * lab/migrate/libvirt/), `nova` (the compute API of a lab with stack: openstack, lab/migrate/nova/). The runner deals in instances, figures and observers; it never
 * speaks QMP or virsh itself.
 */
import type { DriverName, Strategy } from '../config/scenario.ts';
import type { Settings } from '../config/settings.ts';
import type { GuestImage } from '../image/build.ts';
import type { QemuBuild } from '../qemu/builds.ts';
import type { GuestShell } from '../qemu/guest-shell.ts';
import type { LabNode } from '../provision/provider.ts';
import { MigralabError } from '../errors.ts';

export { driverNames, type DriverName } from '../config/scenario.ts';

/** Everything that defines one guest, whichever driver runs it. */
export interface GuestSpec {
  name: string;
  strategy: Strategy;
  uuid: string;
  ip: string;
  /** Prefix length of the lab network. */
  prefix: number;
  mac: string;
  /** Tap device name on every node (15 characters at most). */
  tap: string;
  memoryBytes: number;
  diskBytes: number;
  /** Random data written into the data disk before the first migration. */
  diskDataBytes: number;
  accelerator: 'kvm' | 'tcg';
  image: GuestImage;
  /** The hypervisor build both sides of every migration use. */
  build: QemuBuild;
  /** qemu driver: the destination's migration and NBD ports, where several migrations run at once (default 4444 and 10809). */
  ports?: { migration: number; nbd: number };
}

/** Where the hypervisor itself says the data disk is. */
export interface DiskLocation {
  /** QEMU protocol driver: `file` (local or kernel NFS mount) or `nfs` (QEMU's own NFS client). */
  driver: string;
  filename: string;
  /** The file is the one on the controller's NFS export. */
  onExport: boolean;
}

/** A guest running on one node under one driver. Dispose it to stop it (its disks stay). */
export interface Instance extends AsyncDisposable {
  readonly guest: GuestSpec;
  readonly node: LabNode;
  readonly driver: DriverName;
  /** The hypervisor's run state: `running`, `paused`, `postmigrate`, `inmigrate`, ... */
  status(): Promise<string>;
  /** The hypervisor process (or domain) is gone. */
  gone(): Promise<boolean>;
  disk(): Promise<DiskLocation>;
  /** The guest's control shell (its second serial port). */
  shell(opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<GuestShell>;
  /** The last lines the guest printed on its console. */
  consoleTail(lines: number): Promise<string>;
  /** Stops the hypervisor process for good (the guest's disks stay). */
  stop(): Promise<void>;
  /** Kills the hypervisor process at once (fault injection). */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT of the hypervisor process: a hypervisor that hangs (fault injection). */
  freeze(frozen: boolean): Promise<void>;
  /** How the guest was started, for the guest that launch() returned (not for one a migration made). */
  boot?: BootRecord;
}

/** How a guest was started: booted from its kernel, or restored from a booted snapshot (lab/migrate/qemu/snapshot.ts). */
export interface BootRecord {
  mode: 'cold' | 'snapshot';
  /** From launch() to a guest that answers with its own identity (ms). */
  ms: number;
  /** When this launch made the snapshot first: how long that took (ms, within `ms`); null when it was cached, or for a cold boot. */
  snapshotMadeMs: number | null;
  /** Why a guest that should have been restored booted cold; null otherwise. */
  note: string | null;
}

export interface MigrationProgress {
  phase: 'mirror' | 'ram';
  done: number;
  total: number;
}

/** One look at the hypervisor during a migration (every 50 ms); t is ms after the request. */
export interface MigrationSample {
  t: number;
  phase: 'mirror' | 'ram' | 'postcopy' | 'switchover';
  diskDone: number | null;
  diskRemaining: number | null;
  ramTransferred: number | null;
  ramRemaining: number | null;
  dirtyBytesPerSec: number | null;
  mbps: number | null;
  iterations: number | null;
}

/** Phase boundaries the harness saw, ms after the request (null: not reached or not applicable). */
export interface MigrationMarks {
  mirrorReady: number | null;
  ramStart: number | null;
  postcopyStart: number | null;
  completed: number | null;
  /** When the destination ran (its RESUME event's own timestamp). */
  destRunning: number | null;
  cleanedUp: number | null;
}

export interface EffectiveTunables {
  maxBandwidthBytesPerSec: number | null;
  downtimeLimitMs: number | null;
  multifdChannels: number | null;
  autoConverge: boolean;
  postcopy: boolean;
  /** The migration stream over TLS (tls-creds set on the source); the NBD export follows the same setting. */
  tls: boolean;
}

/** A byte-for-byte comparison of the stopped source's and the paused destination's guest RAM. */
export interface RamDumpComparison {
  bytes: number;
  pagesDiffering: number;
  /** Up to 16 page indexes that differ. */
  firstPages: number[];
  /** ms the dumps and the comparison took (the guest was paused meanwhile: not comparable for timing). */
  tookMs: number;
}

/** libvirt's own account of a migration job (`virsh domjobinfo --completed`). */
export interface LibvirtJobInfo {
  timeElapsedMs: number | null;
  downtimeMs: number | null;
  dataProcessedBytes: number | null;
  memoryProcessedBytes: number | null;
  diskProcessedBytes: number | null;
  iterations: number | null;
  /** The whole virsh migrate call, as the harness timed it. */
  virshMs: number | null;
  raw: Record<string, string>;
}

/** A live migration as nova reported it (the nova driver): its request, its migration record and phases, and where the guest was after a failure. */
export interface NovaMigrationRecord {
  /** The compute API microversion of every call. */
  microversion: string;
  serverId: string;
  /** nova's migration id (GET /servers/{id}/migrations); null: nova never listed one. */
  migrationId: number | null;
  /** os-migrateLive's block_migration: true for block, false for shared. */
  blockMigration: boolean;
  /** os-migrateLive's disk_over_commit: null, the field does not exist at this microversion (2.25 removed it). */
  diskOverCommit: boolean | null;
  /** The request to the server ACTIVE on the destination, as polled (ms); null when it did not get there. What Rally's live-migrate measures. */
  apiToActiveMs: number | null;
  /** nova's request id of the os-migrateLive call (its instance action). */
  requestId: string | null;
  /** Each migration status nova reported, when the harness first saw it (ms after the request, polled every 200 ms). */
  phases: { status: string; atMs: number }[];
  /** ms from one reported status to the next. */
  phaseSpans: { from: string; to: string; ms: number }[];
  /** The migration's final status in nova (completed, error, failed, ...), or why there is none (refused). */
  status: string | null;
  /** nova's reason for a failure: the API's error message, the server's fault, or its instance action's events. */
  fault: string | null;
  /** After a failure: the server's host in nova and the domain's state on each compute (libvirt). */
  location: { nova: string | null; hypervisor: Record<string, string> } | null;
  /** nova's own created_at / updated_at of the migration record (second resolution). */
  novaTimes?: { createdAt: string | null; updatedAt: string | null };
}

export interface MigrationFigures {
  /** Harness wall time, first migration command on the source to the hypervisor's `completed`. */
  durationMs: number;
  /** Destination start + incoming/NBD setup, before the request (not in durationMs); null where the driver prepares inside its operation (nova). */
  prepareMs: number | null;
  /** Disk copy until every disk was ready (block only). */
  mirrorMs: number | null;
  /** Epoch ms of the request and of completion, on the harness's clock. */
  startedAt: number;
  completedAt: number;
  samples: MigrationSample[];
  marks: MigrationMarks;
  tunables: EffectiveTunables;
  qemu: {
    totalTimeMs: number | null;
    downtimeMs: number | null;
    setupTimeMs: number | null;
    ramBytes: number | null;
    /** block: bytes the disk copies processed (the whole virtual disks); shared: 0. */
    diskBytes: number | null;
    /** RAM passes (dirty-sync-count). */
    iterations: number | null;
    dirtyBytesPerSecMax: number | null;
    /** Destination RESUME minus source STOP, from the QMP events' own timestamps. */
    eventDowntimeMs: number | null;
  };
  libvirt?: LibvirtJobInfo;
  /** nova's account, when nova drove the migration (lab/migrate/nova/). */
  nova?: NovaMigrationRecord;
  ramDump?: RamDumpComparison;
  /** Why a figure is null, or what the driver noticed. */
  notes: string[];
}

export interface MigrateOptions {
  timeoutMs: number;
  tunables: Settings['tunables'];
  copyMode: Settings['mirror']['copyMode'];
  /** Keep the destination paused after completion and compare both sides' RAM byte for byte. */
  ramDump?: boolean;
  /** Give up when the migration makes no progress for this long (default: no limit but timeoutMs). */
  stallMs?: number;
  /** security.tls: the migration stream and the NBD export over TLS with a pre-shared key. */
  tls?: Settings['security']['tls'];
  signal?: AbortSignal;
}

/** The destination's hypervisor while a migration runs into it (fault injection). */
export interface DestinationControl {
  readonly node: string;
  /** Sends SIGKILL (does not wait for the process to be gone). */
  kill(): Promise<void>;
  /** SIGSTOP (true) / SIGCONT (false). */
  freeze(frozen: boolean): Promise<void>;
}

/** Where a migration is (for fault injection): the disk copy, the RAM copy, or close to the switchover. */
export type MigrationPhase = 'mirror' | 'ram' | 'switchover-near';

export interface MigrationEvents {
  progress?(p: MigrationProgress): void;
  /** Called once when a phase begins, with ms after the request. */
  phase?(phase: MigrationPhase, atMs: number): void;
  /** Called once the destination's hypervisor runs, before the request. */
  destination?(d: DestinationControl): void;
  /** What the driver is about to ask the hypervisor for, as a person would read it (a QMP command, a virsh command line). */
  request?(text: string): void;
}

export interface MigrationOutcome {
  instance: Instance;
  figures: MigrationFigures;
}

/** What kind of failure ended a migration (issue: every failure classified). */
export type FailureKind =
  | 'destination-died'
  | 'destination-hung'
  | 'link-lost'
  | 'storage-lost'
  | 'disk-full'
  | 'timeout'
  | 'interrupted'
  | 'guest-crashed'
  | 'refused'
  | 'unknown';

export class MigrationFailed extends MigralabError {
  constructor(
    message: string,
    /** Where the guest runs now (the source for a failed migration) and its status; null status: unknown, and why is in the message. */
    readonly guestState: { node: string; status: string },
    readonly kind: FailureKind = 'unknown',
    options?: { cause?: unknown; detectedAfterMs?: number; landed?: Instance; nova?: NovaMigrationRecord },
  ) {
    super('MIGRATION', message, options);
    this.name = 'MigrationFailed';
    this.detectedAfterMs = options?.detectedAfterMs ?? null;
    this.landed = options?.landed;
    this.nova = options?.nova;
  }
  /** nova's account of the failed migration (the nova driver). */
  readonly nova: NovaMigrationRecord | undefined;
  readonly detectedAfterMs: number | null;
  /** The migration completed after all (its watcher failed first): the guest's instance now. */
  readonly landed: Instance | undefined;
}

export interface LaunchOptions {
  signal?: AbortSignal;
  bootTimeoutMs?: number;
}

/** `snapshot`: restore guests from a booted snapshot where the driver can (qemu); `cold`: boot every guest from its kernel. */
export type BootMode = 'snapshot' | 'cold';

export interface MigrationDriver {
  readonly name: DriverName;
  /** Creates the guest's disks on `node` (data disk with its data, config drive), boots it and waits for its init. */
  launch(guest: GuestSpec, node: LabNode, opts?: LaunchOptions): Promise<Instance>;
  /** Moves a running instance to `destination`. On failure the guest keeps running where it was, and MigrationFailed says so. */
  migrate(instance: Instance, destination: LabNode, options: MigrateOptions, events?: MigrationEvents): Promise<MigrationOutcome>;
  /** Why this driver cannot run the guest here (its iterations are skipped, saying so); null when it can. */
  refuses?(guest: GuestSpec): string | null;
  /** The guest left `node` for good: remove what of it stays there (block: its local disk copies). */
  releaseNode(guest: GuestSpec, node: LabNode): Promise<void>;
  /** Removes the guest's disks (and definitions) from every node. */
  destroy(guest: GuestSpec): Promise<void>;
}
