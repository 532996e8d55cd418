/**
 * A small QMP client of our own: one Unix socket, line-delimited JSON, replies matched
 * by `id`, asynchronous events delivered to listeners and to `waitForEvent`.
 *
 * QEMU writes an event *before* the reply of the command that caused it (`stop` →
 * STOP, then `{"return": {}}`), so "execute, then wait for the event" misses it unless
 * the wait looks back: take `eventCursor()` before executing and pass it as `since`.
 */
import type { Duplex } from 'node:stream';
import { MigralabError } from '../errors.ts';
import { connectUnix } from '../exec/local.ts';

/** QEMU's QMP error reply, with the command that got it. */
export class QmpError extends MigralabError {
  constructor(
    readonly command: string,
    /** QMP error class, e.g. `GenericError`, `CommandNotFound`, `DeviceNotFound`. */
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super('LAB', `QMP ${command}: ${errorClass}: ${desc}`);
    this.name = 'QmpError';
  }
}

export interface QmpTimestamp {
  seconds: number;
  microseconds: number;
}

export interface QmpEvent {
  event: string;
  data?: unknown;
  timestamp: QmpTimestamp;
}

export interface QmpGreeting {
  QMP: {
    version: { qemu: { major: number; minor: number; micro: number }; package: string };
    capabilities: string[];
  };
}

/** query-status. `status` is QEMU's RunState. */
export interface StatusInfo {
  running: boolean;
  status:
    | 'debug'
    | 'inmigrate'
    | 'internal-error'
    | 'io-error'
    | 'paused'
    | 'postmigrate'
    | 'prelaunch'
    | 'finish-migrate'
    | 'restore-vm'
    | 'running'
    | 'save-vm'
    | 'shutdown'
    | 'suspended'
    | 'watchdog'
    | 'guest-panicked'
    | 'colo';
  singlestep?: boolean;
}

export type MigrationStatus =
  | 'none'
  | 'setup'
  | 'cancelling'
  | 'cancelled'
  | 'active'
  | 'postcopy-active'
  | 'postcopy-paused'
  | 'postcopy-recover'
  | 'completed'
  | 'failed'
  | 'colo'
  | 'pre-switchover'
  | 'device'
  | 'wait-unplug';

/** query-migrate `ram` (and the deprecated `disk`) statistics. Byte counts unless named otherwise. */
export interface MigrationStats {
  transferred: number;
  remaining: number;
  total: number;
  duplicate: number;
  skipped: number;
  normal: number;
  'normal-bytes': number;
  /** pages dirtied per second */
  'dirty-pages-rate': number;
  /** throughput in Mbit/s */
  mbps: number;
  'dirty-sync-count': number;
  'postcopy-requests': number;
  'page-size': number;
  'multifd-bytes': number;
  'pages-per-second': number;
  'precopy-bytes'?: number;
  'downtime-bytes'?: number;
  'postcopy-bytes'?: number;
  'dirty-sync-missed-zero-copy'?: number;
}

/**
 * query-migrate. On a VM that never migrated QEMU returns `{}`: every field is optional.
 * Times are milliseconds.
 */
export interface MigrationInfo {
  status?: MigrationStatus;
  'total-time'?: number;
  /** actual downtime, set once completed */
  downtime?: number;
  /** estimate while active */
  'expected-downtime'?: number;
  'setup-time'?: number;
  ram?: MigrationStats;
  disk?: MigrationStats;
  'error-desc'?: string;
  'blocked-reasons'?: string[];
  'socket-address'?: unknown[];
  'xbzrle-cache'?: Record<string, number>;
  'compression'?: Record<string, number>;
  'postcopy-blocktime'?: number;
  'postcopy-vcpu-blocktime'?: number[];
}

/** One entry of query-block-jobs (e.g. a drive-mirror). `len`/`offset` are bytes. */
export interface BlockJobInfo {
  type: string;
  device: string;
  len: number;
  offset: number;
  busy: boolean;
  paused: boolean;
  /** rate limit in bytes/s, 0 = unlimited */
  speed: number;
  'io-status': 'ok' | 'failed' | 'nospace';
  ready: boolean;
  status:
    | 'undefined'
    | 'created'
    | 'running'
    | 'paused'
    | 'ready'
    | 'standby'
    | 'waiting'
    | 'pending'
    | 'aborting'
    | 'concluded'
    | 'null';
  'auto-finalize': boolean;
  'auto-dismiss': boolean;
  error?: string;
}

export interface QmpConnectOptions {
  /** Deadline for the greeting and `qmp_capabilities`. Default 10 s. */
  timeoutMs?: number;
  /** Keep retrying while the socket does not exist yet / refuses, for this long. Default 0. */
  retryUntilMs?: number;
  /** Default reply deadline of `execute` (default 10 s); long commands pass their own. */
  commandTimeoutMs?: number;
}

/** Opens a stream to the QMP socket: a local path, or any transport's `connect` (ssh2 streamlocal). */
export type SocketOpener = () => Promise<Duplex>;

/** An opaque position in the event stream, from `eventCursor()`. */
export type QmpEventCursor = number & { readonly __qmpEventCursor: unique symbol };

type EventListener = (ev: QmpEvent) => void;

interface Pending {
  command: string;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout | undefined;
}

interface EventWaiter {
  match: (ev: QmpEvent) => boolean;
  resolve: (ev: QmpEvent) => void;
  reject: (e: unknown) => void;
  timer: NodeJS.Timeout;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** Events kept for `since` look-backs. */
const EVENT_HISTORY = 1000;

export class QmpClient implements AsyncDisposable {
  readonly socketPath: string;
  /** The greeting QEMU sent on connect (version, capabilities). */
  greeting: QmpGreeting | undefined;
  /** Resolves when the socket closes (QEMU exited, or `close()`); never rejects. */
  readonly closed: Promise<void>;

  private readonly socket: Duplex;
  private readonly defaultTimeoutMs: number;
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<EventListener>();
  private readonly waiters = new Set<EventWaiter>();
  /** Recent events; `history[i]` has sequence number `historyBase + i`. */
  private history: QmpEvent[] = [];
  private historyBase = 0;
  private greetingWaiter: { resolve: (g: QmpGreeting) => void; reject: (e: unknown) => void } | undefined;
  private isClosed = false;
  private closeReason: string | undefined;

  private constructor(socketPath: string, socket: Duplex, defaultTimeoutMs = DEFAULT_TIMEOUT_MS) {
    this.socketPath = socketPath;
    this.socket = socket;
    this.defaultTimeoutMs = defaultTimeoutMs;
    socket.setEncoding('utf8');
    this.closed = new Promise<void>((resolve) => {
      socket.once('close', () => {
        this.onClose();
        resolve();
      });
    });
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (err) => {
      this.closeReason = err.message;
    });
  }

  /** Connects, reads the greeting and negotiates capabilities. */
  static async connect(socketPath: string, opts: QmpConnectOptions & { open?: SocketOpener } = {}): Promise<QmpClient> {
    const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const retryDeadline = Date.now() + (opts.retryUntilMs ?? 0);
    const socket = await openSocket(socketPath, retryDeadline, opts.open ?? (() => connectUnix(socketPath)));
    const client = new QmpClient(socketPath, socket, opts.commandTimeoutMs);
    try {
      client.greeting = await client.readGreeting(timeoutMs);
      await client.execute('qmp_capabilities', undefined, { timeoutMs });
      return client;
    } catch (e) {
      await client.close();
      throw e;
    }
  }

  get isOpen(): boolean {
    return !this.isClosed;
  }

  /**
   * Runs a command and resolves with its `return` value; rejects with `QmpError` on an
   * error reply, and with a `MigralabError` on timeout or when the connection closes.
   */
  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.isClosed) {
      return Promise.reject(new MigralabError('LAB', `QMP ${command}: connection to ${this.socketPath} is closed`));
    }
    const id = this.nextId++;
    const timeoutMs = opts.timeoutMs ?? this.defaultTimeoutMs;
    return new Promise<T>((resolve, reject) => {
      const entry: Pending = {
        command,
        resolve: resolve as (v: unknown) => void,
        reject,
        timer: setTimeout(() => {
          this.pending.delete(id);
          reject(new MigralabError('LAB', `QMP ${command}: no reply within ${timeoutMs} ms (${this.socketPath})`));
        }, timeoutMs),
      };
      this.pending.set(id, entry);
      const msg: Record<string, unknown> = { execute: command, id };
      if (args !== undefined) msg.arguments = args;
      this.socket.write(`${JSON.stringify(msg)}\n`);
    });
  }

  on(type: 'event', listener: EventListener): this {
    if (type === 'event') this.listeners.add(listener);
    return this;
  }

  off(type: 'event', listener: EventListener): this {
    if (type === 'event') this.listeners.delete(listener);
    return this;
  }

  /** Position after the last event received so far; pass it to `waitForEvent` as `since`. */
  eventCursor(): QmpEventCursor {
    return (this.historyBase + this.history.length) as QmpEventCursor;
  }

  /** Events received after `cursor`, oldest first (as far back as the history reaches). */
  eventsSince(cursor: QmpEventCursor): QmpEvent[] {
    return this.history.slice(Math.max(0, cursor - this.historyBase));
  }

  /**
   * Resolves with the first event named `name` (and accepted by `predicate`) that
   * arrives from now on, or, with `since`, that arrived after that cursor.
   */
  waitForEvent(
    name: string,
    predicate: ((ev: QmpEvent) => boolean) | undefined,
    timeoutMs: number,
    opts: { since?: QmpEventCursor } = {},
  ): Promise<QmpEvent> {
    const match = (ev: QmpEvent) => ev.event === name && (predicate ? predicate(ev) : true);
    if (opts.since !== undefined) {
      const from = Math.max(0, opts.since - this.historyBase);
      for (const ev of this.history.slice(from)) if (match(ev)) return Promise.resolve(ev);
    }
    if (this.isClosed) {
      return Promise.reject(new MigralabError('LAB', `QMP event ${name}: connection to ${this.socketPath} is closed`));
    }
    return new Promise<QmpEvent>((resolve, reject) => {
      const waiter: EventWaiter = {
        match,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(new MigralabError('LAB', `QMP event ${name}: not received within ${timeoutMs} ms (${this.socketPath})`));
        }, timeoutMs),
      };
      this.waiters.add(waiter);
    });
  }

  /** Closes the connection (QEMU keeps running) and waits until the socket is closed. */
  async close(): Promise<void> {
    if (!this.isClosed) {
      this.closeReason ??= 'closed by client';
      this.socket.end();
      this.socket.destroy();
    }
    await this.closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  private readGreeting(timeoutMs: number): Promise<QmpGreeting> {
    return new Promise<QmpGreeting>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.greetingWaiter = undefined;
        reject(new MigralabError('LAB', `QMP ${this.socketPath}: no greeting within ${timeoutMs} ms (is another client connected?)`));
      }, timeoutMs);
      this.greetingWaiter = {
        resolve: (g) => {
          clearTimeout(timer);
          resolve(g);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  private onData(chunk: string): void {
    this.buffer += chunk;
    let nl: number;
    while ((nl = this.buffer.indexOf('\n')) >= 0) {
      const line = this.buffer.slice(0, nl).trim();
      this.buffer = this.buffer.slice(nl + 1);
      if (line) this.onMessage(line);
    }
  }

  private onMessage(line: string): void {
    let msg: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not a JSON object');
      msg = parsed as Record<string, unknown>;
    } catch (e) {
      this.protocolError(`unparsable message ${JSON.stringify(line.slice(0, 200))}: ${(e as Error).message}`);
      return;
    }
    if ('QMP' in msg) {
      const w = this.greetingWaiter;
      this.greetingWaiter = undefined;
      w?.resolve(msg as unknown as QmpGreeting);
      return;
    }
    if (typeof msg.event === 'string') {
      this.onEvent(msg as unknown as QmpEvent);
      return;
    }
    if ('return' in msg || 'error' in msg) {
      const id = msg.id;
      const entry = typeof id === 'number' ? this.pending.get(id) : undefined;
      if (!entry) return; // a reply to a command that already timed out
      this.pending.delete(id as number);
      clearTimeout(entry.timer);
      if ('error' in msg) {
        const err = (msg.error ?? {}) as { class?: unknown; desc?: unknown };
        entry.reject(new QmpError(entry.command, String(err.class ?? 'UnknownError'), String(err.desc ?? '')));
      } else {
        entry.resolve(msg.return);
      }
      return;
    }
    this.protocolError(`unexpected message ${line.slice(0, 200)}`);
  }

  private onEvent(ev: QmpEvent): void {
    this.history.push(ev);
    if (this.history.length > EVENT_HISTORY) {
      const drop = this.history.length - EVENT_HISTORY;
      this.history = this.history.slice(drop);
      this.historyBase += drop;
    }
    for (const w of [...this.waiters]) {
      if (!w.match(ev)) continue;
      this.waiters.delete(w);
      clearTimeout(w.timer);
      w.resolve(ev);
    }
    for (const l of [...this.listeners]) {
      try {
        l(ev);
      } catch {
        // a listener's bug must not break the protocol loop
      }
    }
  }

  private protocolError(why: string): void {
    this.closeReason = `protocol error: ${why}`;
    this.socket.destroy();
  }

  private onClose(): void {
    this.isClosed = true;
    const why = this.closeReason ?? 'QEMU closed the connection';
    const err = (what: string) => new MigralabError('LAB', `QMP ${what}: connection to ${this.socketPath} closed (${why})`);
    if (this.greetingWaiter) {
      this.greetingWaiter.reject(err('greeting'));
      this.greetingWaiter = undefined;
    }
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      this.pending.delete(id);
      p.reject(err(p.command));
    }
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.reject(err('event wait'));
    }
    this.waiters.clear();
  }
}

async function openSocket(path: string, retryDeadline: number, open: SocketOpener): Promise<Duplex> {
  for (;;) {
    try {
      return await open();
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const retriable = code === 'ENOENT' || code === 'ECONNREFUSED' || /no such file|connection refused/i.test((e as Error).message);
      if (!retriable || Date.now() >= retryDeadline) {
        throw new MigralabError('LAB', `QMP: cannot connect to ${path}: ${(e as Error).message}`, { cause: e });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
