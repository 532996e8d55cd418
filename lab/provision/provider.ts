/**
 * Where the lab's nodes come from, behind one interface chosen by the topology's
 * `provider`: `local` (network namespaces on this host, lab/provision/local.ts) or `ssh`
 * (existing hosts reached over ssh2, lab/provision/ssh.ts).
 */
import type { Topology } from '../config/topology.ts';
import type { NodeTransport } from '../exec/transport.ts';
import type { Ledger } from '../state/ledger.ts';
import type { Environment } from './environment.ts';
import type { GuestImage } from '../image/build.ts';
import type { LabPlan, NodePlan } from './plan.ts';
import type { StackInfo } from '../stack/openstack/stack.ts';

export type Progress = (msg: string) => void;

/** What `up` leaves in <labDir>/lab.json for `run`, `status` and `down`. */
export interface LabInfo {
  lab: string;
  provider: 'local' | 'ssh';
  topologyFile: string;
  upAt: string;
  upMs: number;
  environment: Environment;
  image: GuestImage;
  nfs: { server: string; exportPath: string; version: 3 | 4; client: Environment['nfsClient']; mountPoint?: string };
  nodes: { name: string; roles: string[]; address: string; netns: string; instancesDir: string }[];
  observer: { name: string; address: string; netns: string };
  /** The lab profile's services (stack: openstack), when it runs one. */
  stack?: StackInfo;
}

/** One node of a started lab: its plan, and the transport every operation on it goes through. */
export interface LabNode {
  readonly name: string;
  readonly address: string;
  readonly plan: NodePlan;
  readonly transport: NodeTransport;
  /** Bytes this node has sent towards the other nodes (its uplink's counters); null if unreadable. */
  txBytes(): Promise<number | null>;
}

/** A lab that is up: dispose it to take it down (only when this process raised it, unless told). */
export interface StartedLab extends AsyncDisposable {
  readonly plan: LabPlan;
  readonly info: LabInfo;
  readonly ledger: Ledger;
  /** The lab was up before this process asked for it (a healthy lab is never raised again). */
  readonly alreadyUp: boolean;
  readonly nodes: readonly LabNode[];
  /** Nodes with the compute role, in topology order. */
  readonly computes: readonly LabNode[];
  node(name: string): LabNode;
  /** Where the ping observer runs. */
  observer(): NodeTransport;
  /** The lab's NFS server, for fault injection (the local lab; undefined where it cannot be controlled). */
  readonly nfsServer?: NfsServerControl;
  /** Where the provider configures libvirtd itself (ssh: on the hosts, in their ledgers): the tutorial's libvirtd on every compute node, for the libvirt driver. */
  ensureLibvirtd?(progress?: Progress): Promise<void>;
  /** Takes the lab down (whoever raised it). */
  down(progress?: Progress): Promise<DownReport>;
  /** Lets go of the lab without taking it down: closes connections to its hosts. */
  release(): void;
}

export interface NfsServerControl {
  readonly node: string;
  /** SIGKILL of the NFS server daemon; resolves once it is gone. */
  kill(): Promise<void>;
  /** Starts it again as up did, and waits until it serves. */
  restart(): Promise<void>;
}

export interface DownReport {
  removed: number;
  wasUp: boolean;
  /** Processes that did not exit on SIGTERM within the grace period and were killed. */
  killed: string[];
}

export interface LabStatus {
  state: 'up' | 'down' | 'broken';
  problems: string[];
  info: LabInfo | undefined;
}

export interface Provider {
  readonly name: 'local' | 'ssh';
  /** Raises the lab (idempotent: a healthy lab is returned as it is; leftovers of a broken one are removed first). */
  up(topology: Topology, topologyFile: string, progress?: Progress, signal?: AbortSignal): Promise<StartedLab>;
  /** Removes everything the ledger lists; returns only once every process of the lab has exited. */
  /** `forget`: drop this machine's record only, touching no host (hosts that no longer exist). */
  down(plan: LabPlan, progress?: Progress, opts?: { forget?: boolean }): Promise<DownReport>;
  status(plan: LabPlan): Promise<LabStatus>;
  /** The lab as it is, healthy or not, when it is up at all (doctor diagnoses, it does not repair); undefined when down. */
  attach(plan: LabPlan): Promise<StartedLab | undefined>;
}
