/**
 * The guest control shell: a non-interactive busybox `sh` on the guest's second serial
 * port (ttyS1), reached through QEMU's unix-socket chardev:
 *
 *   -chardev socket,id=ctl,path=P,server=on,wait=off -serial file:console.log -serial chardev:ctl
 *
 * Each exec() sends one line, COMMAND_PREFIX and a `sh -c` invocation framed by a start and
 * an end marker that carry a per-call nonce (the guest runs only whole lines with the prefix,
 * so the tail of a line cut by the init's drain is ignored, never read as shell text); the markers are split by quotes in the text we send, so an
 * echo of the command can never be mistaken for its result.
 */
import { Deadline } from '../time/wait.ts';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { connectUnix } from '../exec/local.ts';
import { MigralabError } from '../errors.ts';
import { COMMAND_PREFIX, ERROR_MARKER, READY_MARKER, STATUS_PATH } from '../image/init.ts';

/** The guest did not answer its control shell in time: a hung guest, not a failed command. */
export class GuestTimeout extends MigralabError {
  constructor(message: string) {
    super('LAB', message);
    this.name = 'GuestTimeout';
  }
}

export interface ExecResult {
  /** Everything the command wrote to stdout and stderr, byte for byte (no trailing newline added or removed). */
  output: string;
  status: number;
}

export interface GuestStatus {
  ready: boolean;
  /** The guest's name (READY) or the init's error words (ERROR). */
  detail: string;
}

/** Longest command accepted: the guest tty buffers are small, and the control channel is for commands, not bulk data. */
export const MAX_COMMAND_BYTES = 64 * 1024;

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command as one line of shell text for `sh -c`: the guest runs a line at a time, so a
 * command with line breaks travels as printf %b escapes and is rebuilt in the guest.
 */
export function commandWord(command: string): string {
  if (!/[\r\n]/.test(command)) return shellQuote(command);
  const escaped = command.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
  return `"$(printf '%b' ${shellQuote(escaped)})"`;
}

const STATUS_RE = new RegExp(`(?:^|[^A-Za-z0-9-])(${READY_MARKER} (\\S+)|${ERROR_MARKER}(?: (.*))?)$`);

/**
 * Finds the init's status line. It may share a line with leftovers of a cut-off echo from
 * before the shell started, so the marker is matched at the end of the line, not the start.
 */
function parseStatusLine(line: string): GuestStatus | undefined {
  const m = STATUS_RE.exec(line.replace(/\r$/, ''));
  if (!m) return undefined;
  if (m[2] !== undefined) return { ready: true, detail: m[2] };
  return { ready: false, detail: (m[3] ?? '').trim() };
}

export class GuestShell implements AsyncDisposable {
  private buf = '';
  private lineTail = '';
  private listeners = new Set<() => void>();
  private queue: Promise<unknown> = Promise.resolve();
  private counter = 0;
  private readonly session = randomBytes(4).toString('hex');
  private closedWhy: string | undefined;
  private bootStatus: GuestStatus | undefined;

  private constructor(
    private readonly socket: Duplex,
    readonly socketPath: string,
  ) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.onData(chunk));
    socket.on('error', (e) => this.markClosed(`control socket error: ${e.message}`));
    socket.on('close', () => this.markClosed('control socket closed'));
  }

  /** Connects to QEMU's chardev socket, retrying while QEMU has not created it yet. */
  static async connect(socketPath: string, opts: { timeoutMs?: number; open?: () => Promise<Duplex>; signal?: AbortSignal } = {}): Promise<GuestShell> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const deadline = new Deadline(timeoutMs);
    const open = opts.open ?? (() => connectUnix(socketPath));
    for (;;) {
      if (opts.signal?.aborted) throw new MigralabError('INTERRUPTED', `interrupted while connecting to ${socketPath}`);
      try {
        return new GuestShell(await open(), socketPath);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        const retriable = code === 'ENOENT' || code === 'ECONNREFUSED' || /no such file|connection refused/i.test((e as Error).message);
        if (!retriable || deadline.expired) {
          throw new MigralabError('LAB', `cannot connect to the guest control socket ${socketPath}: ${(e as Error).message}`, { cause: e });
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** The init's READY/ERROR line if one was seen on the control channel (or found by waitReady). */
  get status(): GuestStatus | undefined {
    return this.bootStatus;
  }

  get closed(): boolean {
    return this.closedWhy !== undefined;
  }

  private onData(chunk: string): void {
    this.buf += chunk;
    this.lineTail += chunk;
    const lines = this.lineTail.split('\n');
    this.lineTail = (lines.pop() ?? '').slice(-4096);
    for (const line of lines) {
      const st = parseStatusLine(line);
      if (st) this.bootStatus = st;
    }
    // Nothing waits for old text: keep memory bounded when nobody runs commands.
    if (this.listeners.size === 0 && this.buf.length > 1 << 20) this.buf = this.buf.slice(-(1 << 16));
    for (const l of [...this.listeners]) l();
  }

  private markClosed(why: string): void {
    if (this.closedWhy !== undefined) return;
    this.closedWhy = why;
    for (const l of [...this.listeners]) l();
  }

  /** Waits until check() returns a value, new data arriving re-runs it. */
  private waitUntil<T>(check: () => T | undefined, timeoutMs: number, what: string, signal?: AbortSignal): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        done();
        reject(new MigralabError('LAB', `${what}: aborted`));
      };
      const done = () => {
        this.listeners.delete(listener);
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      };
      if (signal?.aborted) {
        reject(new MigralabError('LAB', `${what}: aborted`));
        return;
      }
      signal?.addEventListener('abort', onAbort);
      const listener = () => {
        let v: T | undefined;
        try {
          v = check();
        } catch (e) {
          done();
          reject(e);
          return;
        }
        if (v !== undefined) {
          done();
          resolve(v);
        } else if (this.closedWhy !== undefined) {
          done();
          reject(new MigralabError('LAB', `${what}: ${this.closedWhy}`));
        }
      };
      timer = setTimeout(() => {
        done();
        reject(new GuestTimeout(`${what}: timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.listeners.add(listener);
      listener();
    });
  }

  /**
   * Runs `command` with `sh -c` in the guest (stdin /dev/null, stderr merged into stdout)
   * and returns its output and exit status. Calls run one at a time, in call order.
   */
  exec(command: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<ExecResult> {
    const p = this.queue.then(() => this.execNow(command, opts.timeoutMs ?? 30_000, opts.signal));
    this.queue = p.catch(() => {});
    return p;
  }

  private async execNow(command: string, timeoutMs: number, signal?: AbortSignal): Promise<ExecResult> {
    if (signal?.aborted) throw new MigralabError('LAB', `guest command ${JSON.stringify(command)}: aborted`);
    if (command.includes('\0')) throw new MigralabError('USAGE', 'guest command contains a NUL byte');
    if (Buffer.byteLength(command) > MAX_COMMAND_BYTES) {
      throw new MigralabError('USAGE', `guest command longer than ${MAX_COMMAND_BYTES} bytes`);
    }
    if (this.closedWhy !== undefined) throw new MigralabError('LAB', `guest command ${JSON.stringify(command)}: ${this.closedWhy}`);
    const nonce = `${this.session}${(this.counter++).toString(36)}`;
    const start = `@@S${nonce}@@\n`;
    const endRe = new RegExp(`@@E${nonce}:(\\d+)@@\\n`);
    // In the text sent, '@@''S' and "@@""E" keep the markers from appearing verbatim.
    const line = `${COMMAND_PREFIX}echo '@@''S${nonce}@@'; sh -c ${commandWord(command)} </dev/null 2>&1; echo "@@""E${nonce}:$?@@"\n`;
    this.socket.write(line);
    const short = command.length > 80 ? `${command.slice(0, 77)}...` : command;
    const result = await this.waitUntil(
      () => {
        const s = this.buf.indexOf(start);
        if (s < 0) return undefined;
        const rest = this.buf.slice(s + start.length);
        const m = endRe.exec(rest);
        if (!m) return undefined;
        this.buf = rest.slice(m.index + m[0].length);
        return { output: rest.slice(0, m.index), status: Number(m[1]) };
      },
      timeoutMs,
      `guest command ${JSON.stringify(short)} on ${this.socketPath}`,
      signal,
    );
    return result;
  }

  /**
   * Waits for the guest's init to finish: the READY/ERROR line on the control channel, or,
   * when this connection came too late to see it, the status file read through the shell
   * (probed every probeIntervalMs; probes sent before the shell exists are drained by the
   * guest's init). Resolves with the guest's name; an ERROR line rejects with the reasons.
   */
  async waitReady(opts: { timeoutMs?: number; probeIntervalMs?: number; signal?: AbortSignal } = {}): Promise<string> {
    const timeoutMs = opts.timeoutMs ?? 60_000;
    const probeIntervalMs = opts.probeIntervalMs ?? 3_000;
    const deadline = new Deadline(timeoutMs);
    const settle = (st: GuestStatus): string => {
      if (!st.ready) throw new MigralabError('LAB', `guest init failed (${this.socketPath}): ${st.detail}`);
      return st.detail;
    };
    for (;;) {
      if (this.bootStatus) return settle(this.bootStatus);
      if (opts.signal?.aborted) throw new MigralabError('INTERRUPTED', `interrupted while waiting for the guest on ${this.socketPath}`);
      if (this.closedWhy !== undefined) throw new MigralabError('LAB', `guest on ${this.socketPath} not ready: ${this.closedWhy}`);
      const remaining = deadline.remaining();
      if (remaining <= 0) throw new MigralabError('LAB', `guest on ${this.socketPath} not ready after ${Math.round(timeoutMs)} ms`);
      const slice = Math.min(probeIntervalMs, remaining);
      const abort = new AbortController();
      const onAbort = () => abort.abort();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      const seen = this.waitUntil(() => this.bootStatus, slice, 'guest ready', abort.signal);
      const probed = this.exec(`cat ${STATUS_PATH}`, { timeoutMs: slice, signal: abort.signal }).then((r) =>
        r.status === 0 ? parseStatusLine(r.output.trim()) : undefined,
      );
      // Whichever answers first wins; the other is aborted so no stale probe blocks the queue.
      const st = await Promise.any([seen, probed.then((v) => v ?? Promise.reject(new Error('no status')))]).catch(() => undefined);
      abort.abort();
      opts.signal?.removeEventListener('abort', onAbort);
      await Promise.allSettled([seen, probed]);
      if (st) this.bootStatus ??= st;
    }
  }

  close(): void {
    this.markClosed('control socket closed by us');
    this.socket.destroy();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.close();
  }
}

/** Connects to the control socket and waits for the guest's init to report READY. */
export async function waitForGuestReady(
  socketPath: string,
  opts: { timeoutMs?: number; open?: () => Promise<Duplex>; signal?: AbortSignal } = {},
): Promise<GuestShell> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const deadline = new Deadline(timeoutMs);
  const shell = await GuestShell.connect(socketPath, { timeoutMs, open: opts.open, signal: opts.signal });
  try {
    await shell.waitReady({ timeoutMs: Math.max(1, deadline.remaining()), signal: opts.signal });
    return shell;
  } catch (e) {
    shell.close();
    throw e;
  }
}
