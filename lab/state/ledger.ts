import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Everything the lab creates, written here before it is created so `down` can undo it after a crash. */
export type Resource =
  | { kind: 'dir'; path: string }
  /** An empty directory made on the host only to mount over inside a node (removed when empty, never recursively). */
  | { kind: 'mountpoint'; path: string }
  | { kind: 'netns'; name: string }
  | { kind: 'mount'; target: string }
  /**
   * A process: a lab daemon (node 'lab': rpcbind, ganesha, libvirtd, sshd) lives as long as
   * the lab; anything else (a guest's QEMU) belongs to the run that started it (`owner`).
   */
  | { kind: 'process'; name: string; node: string; pid?: number; startTime?: string; owner?: Owner }
  /** A host of an ssh lab that migralab configured: its own ledger and backups are on it (lab/provision/ssh.ts). */
  | { kind: 'host'; node: string }
  /** A migralab process using the lab (a run): while it lives, its guests are not orphans. */
  | { kind: 'user'; pid: number; startTime: string | undefined; what: string };

/** The migralab process that created a resource. */
export interface Owner {
  pid: number;
  startTime: string | undefined;
}

export interface LedgerData {
  lab: string;
  createdAt: string;
  /** 'creating' until `up` finished, then 'up'. */
  status: 'creating' | 'up';
  resources: Resource[];
}

/**
 * Append-only record of created resources, persisted atomically after every change.
 * Writes are serialized so concurrent callers never interleave a file write.
 */
export class Ledger {
  private chain: Promise<void> = Promise.resolve();

  private constructor(
    readonly file: string,
    private data: LedgerData,
  ) {}

  static async open(file: string, lab: string): Promise<Ledger> {
    const existing = await Ledger.read(file);
    return new Ledger(file, existing ?? { lab, createdAt: new Date().toISOString(), status: 'creating', resources: [] });
  }

  static async read(file: string): Promise<LedgerData | undefined> {
    try {
      return JSON.parse(await readFile(file, 'utf8')) as LedgerData;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw e;
    }
  }

  get status(): LedgerData['status'] {
    return this.data.status;
  }

  get resources(): readonly Resource[] {
    return this.data.resources;
  }

  /** Records a resource (before it is created). Returns the entry itself, the handle for later updates. */
  async record<K extends Resource['kind']>(r: Extract<Resource, { kind: K }>): Promise<Extract<Resource, { kind: K }>> {
    const entry = { ...r };
    this.data.resources.push(entry);
    await this.persist();
    return entry;
  }

  /** Completes an entry (e.g. a process's PID once it exists); stays valid when other entries are forgotten. */
  async update<R extends Resource>(entry: R, patch: Partial<R>): Promise<void> {
    if (!this.data.resources.includes(entry)) throw new Error('ledger: update of an entry that is not recorded');
    Object.assign(entry, patch);
    await this.persist();
  }

  /** Drops entries that were removed (e.g. a process that exited normally). */
  async forget(pred: (r: Resource) => boolean): Promise<void> {
    this.data.resources = this.data.resources.filter((r) => !pred(r));
    await this.persist();
  }

  async setStatus(status: LedgerData['status']): Promise<void> {
    this.data.status = status;
    await this.persist();
  }

  async remove(): Promise<void> {
    await this.chain;
    await rm(this.file, { force: true });
  }

  private persist(): Promise<void> {
    const snapshot = JSON.stringify(this.data, null, 2);
    this.chain = this.chain.then(async () => {
      await mkdir(dirname(this.file), { recursive: true, mode: 0o700 });
      const tmp = `${this.file}.tmp`;
      await writeFile(tmp, snapshot, { mode: 0o600 });
      await rename(tmp, this.file);
    });
    return this.chain;
  }
}

