/**
 * Ping as an observer: a parser for iputils `ping -D -n -O` output, the gap arithmetic
 * behind "ping interruption", and a probe that runs ping for the length of a migration.
 *
 * Timestamps are the `[seconds.micros]` prefix that `-D` prints (CLOCK_REALTIME, the
 * same clock as Date.now()), kept in integer microseconds so gaps are exact.
 */
import { StringDecoder } from 'node:string_decoder';
import { MigralabError } from '../errors.ts';
import { LocalNode } from '../exec/local.ts';
import type { NodeTransport, StreamingProcess } from '../exec/transport.ts';
import { median } from './stats.ts';
import { gapsBetween, largestGap } from './gaps.ts';

/** `[1732700000.123456] 64 bytes from 10.1.2.3: icmp_seq=5 ttl=64 time=0.123 ms` */
export interface PingReply {
  kind: 'reply';
  /** receive time, epoch milliseconds (fractional) */
  epochMs: number;
  /** receive time, epoch microseconds (integer, exact) */
  epochUs: number;
  /** the address as printed (with -n: the numeric address) */
  from: string;
  bytes: number;
  /** icmp_seq as printed: 16 bits, wraps after 65535 */
  seq: number;
  ttl: number | undefined;
  rttMs: number | undefined;
  /** ping flagged it `(DUP!)` (it does not for broadcast pings) */
  dup: boolean;
}

/** `[ts] no answer yet for icmp_seq=N`: `-O`, printed when the next packet is sent. */
export interface PingNoAnswer {
  kind: 'no-answer';
  epochMs: number;
  epochUs: number;
  seq: number;
}

/**
 * `[ts] From 10.0.0.1 icmp_seq=3 Destination Host Unreachable`, or a `ping: ...`
 * diagnostic (stderr, no timestamp).
 */
export interface PingErrorLine {
  kind: 'error';
  epochMs: number | undefined;
  epochUs: number | undefined;
  from: string | undefined;
  seq: number | undefined;
  message: string;
}

/** `10 packets transmitted, 8 received, +1 duplicates, +2 errors, 20% packet loss, time 912ms` */
export interface PingTransmitted {
  kind: 'transmitted';
  transmitted: number;
  received: number;
  duplicates: number;
  corrupted: number;
  errors: number;
  lossPercent: number;
  timeMs: number | undefined;
}

/** `rtt min/avg/max/mdev = 0.037/0.056/0.300/0.057 ms[, pipe 2][, ipg/ewma a/b ms]` */
export interface PingRtt {
  kind: 'rtt';
  minMs: number;
  avgMs: number;
  maxMs: number;
  mdevMs: number;
  pipe: number | undefined;
}

/** `pipe 7`: on a line of its own when no reply came back (so no rtt line). */
export interface PingPipe {
  kind: 'pipe';
  pipe: number;
}

/** `PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data.`: printed once ping is set up. */
export interface PingHeader {
  kind: 'header';
  target: string;
  address: string;
}

export type PingLine = PingReply | PingNoAnswer | PingErrorLine | PingTransmitted | PingRtt | PingPipe | PingHeader;

const TS_RE = /^\[(\d+)\.(\d+)\]\s*(.*)$/;
const REPLY_RE = /^(\d+) bytes from (.+?): icmp_seq=(\d+)(.*)$/;
const NO_ANSWER_RE = /^no answer yet for icmp_seq=(\d+)\s*$/;
const FROM_RE = /^From (\S+?)(?: \(([^)]+)\))?:? icmp_seq=(\d+)\s+(.+)$/;
const RTT_RE = /^(?:rtt|round-trip) min\/avg\/max\/(?:mdev|stddev) = ([\d.]+)\/([\d.]+)\/([\d.]+)\/([\d.]+) ms(.*)$/;
const HEADER_RE = /^PING (\S+) \(([^)]+)\)/;

/**
 * Parses one line of iputils ping output (stdout or stderr). Returns undefined for
 * lines that carry nothing we use (blank, `--- x ping statistics ---`) and for reply
 * or no-answer lines without the `-D` timestamp.
 */
export function parsePingLine(line: string): PingLine | undefined {
  let text = line.trim();
  let epochUs: number | undefined;
  const ts = TS_RE.exec(text);
  if (ts) {
    const frac = (ts[2] as string).padEnd(6, '0').slice(0, 6);
    epochUs = Number(ts[1]) * 1_000_000 + Number(frac);
    text = ts[3] as string;
  }
  const epochMs = epochUs === undefined ? undefined : epochUs / 1000;

  let m = REPLY_RE.exec(text);
  if (m) {
    if (epochUs === undefined || epochMs === undefined) return undefined;
    const rest = m[4] as string;
    const ttl = /\bttl=(\d+)/.exec(rest);
    const time = /\btime=([\d.]+) ms/.exec(rest);
    let from = m[2] as string;
    const named = /^\S+ \(([^)]+)\)$/.exec(from); // "host (1.2.3.4)" without -n
    if (named) from = named[1] as string;
    return {
      kind: 'reply',
      epochMs,
      epochUs,
      from,
      bytes: Number(m[1]),
      seq: Number(m[3]),
      ttl: ttl ? Number(ttl[1]) : undefined,
      rttMs: time ? Number(time[1]) : undefined,
      dup: rest.includes('(DUP!)'),
    };
  }
  m = NO_ANSWER_RE.exec(text);
  if (m) {
    if (epochUs === undefined || epochMs === undefined) return undefined;
    return { kind: 'no-answer', epochMs, epochUs, seq: Number(m[1]) };
  }
  m = FROM_RE.exec(text);
  if (m) {
    return { kind: 'error', epochMs, epochUs, from: m[2] ?? m[1], seq: Number(m[3]), message: (m[4] as string).trim() };
  }
  if (/^\d+ packets transmitted, /.test(text)) return parseTransmitted(text);
  m = RTT_RE.exec(text);
  if (m) {
    const pipe = /\bpipe (\d+)/.exec(m[5] as string);
    return {
      kind: 'rtt',
      minMs: Number(m[1]),
      avgMs: Number(m[2]),
      maxMs: Number(m[3]),
      mdevMs: Number(m[4]),
      pipe: pipe ? Number(pipe[1]) : undefined,
    };
  }
  m = /^pipe (\d+)$/.exec(text);
  if (m) return { kind: 'pipe', pipe: Number(m[1]) };
  m = HEADER_RE.exec(text);
  if (m) return { kind: 'header', target: m[1] as string, address: m[2] as string };
  m = /^ping: (.+)$/.exec(text);
  if (m) return { kind: 'error', epochMs, epochUs, from: undefined, seq: undefined, message: (m[1] as string).trim() };
  return undefined;
}

function parseTransmitted(text: string): PingTransmitted | undefined {
  const out: PingTransmitted = {
    kind: 'transmitted',
    transmitted: NaN,
    received: NaN,
    duplicates: 0,
    corrupted: 0,
    errors: 0,
    lossPercent: NaN,
    timeMs: undefined,
  };
  for (const part of text.split(/,\s*/)) {
    let m: RegExpExecArray | null;
    if ((m = /^(\d+) packets transmitted$/.exec(part))) out.transmitted = Number(m[1]);
    else if ((m = /^(\d+) (?:packets )?received$/.exec(part))) out.received = Number(m[1]);
    else if ((m = /^\+(\d+) duplicates$/.exec(part))) out.duplicates = Number(m[1]);
    else if ((m = /^\+(\d+) corrupted$/.exec(part))) out.corrupted = Number(m[1]);
    else if ((m = /^\+(\d+) errors$/.exec(part))) out.errors = Number(m[1]);
    else if ((m = /^([\d.]+)% packet loss$/.exec(part))) out.lossPercent = Number(m[1]);
    else if ((m = /^time (\d+)ms$/.exec(part))) out.timeMs = Number(m[1]);
  }
  return Number.isNaN(out.transmitted) || Number.isNaN(out.received) ? undefined : out;
}

/** What `summarize` needs of a reply; `epochUs`, when present, makes gaps exact. */
export interface TimedReply {
  epochMs: number;
  epochUs?: number;
  seq: number;
  rttMs?: number | undefined;
}

export interface SummarizeOptions {
  intervalMs: number;
  /** packets sent (ping's own `packets transmitted`) */
  sent: number;
  /** Only gaps that overlap [windowStartMs, windowEndMs] (epoch ms) count. */
  windowStartMs?: number;
  windowEndMs?: number;
}

export interface PingSummary {
  intervalMs: number;
  sent: number;
  /** distinct replies (duplicates counted once) */
  received: number;
  lost: number;
  /** largest time between consecutive distinct replies, ms, unrounded; undefined if none measurable */
  maxGapMs: number | undefined;
  /** epoch ms of the reply (or window edge) that opens the largest gap */
  maxGapStartMs: number | undefined;
  /** epoch ms of the reply (or window edge) that closes it */
  maxGapEndMs: number | undefined;
  maxRttMs: number | undefined;
  /**
   * Median time between consecutive replies (all of them, window or not): the cadence
   * ping really kept. iputils rounds intervals of 10 ms and more up to kernel ticks
   * (`-i 0.01` sends every ~16 ms on a HZ=250 kernel), so it can differ from intervalMs.
   */
  medianGapMs: number | undefined;
}

const SEQ_MOD = 65536;

/**
 * Counts and the largest gap between consecutive replies.
 *
 * Duplicates (same icmp_seq, allowing for the 16-bit wrap) count once, at their first
 * arrival; their round-trip times are not used. `received`, `lost` and `maxRttMs` cover all replies given. The window limits
 * only the gap search: a gap counts when it overlaps the window, and where no reply
 * exists on one side of the window the window edge bounds the gap (so a target that
 * never answered inside the window shows the whole window as its gap).
 */
export function summarize(replies: readonly TimedReply[], opts: SummarizeOptions): PingSummary {
  const unique = dedupe(replies, opts.intervalMs);
  const received = unique.length;
  let maxRttMs: number | undefined;
  for (const r of unique) if (r.rttMs !== undefined && (maxRttMs === undefined || r.rttMs > maxRttMs)) maxRttMs = r.rttMs;

  // Points in microseconds: replies, plus window edges where no reply lies beyond them.
  const points = unique.map((r) => usOf(r)).sort((a, b) => a - b);
  const ws = opts.windowStartMs === undefined ? undefined : opts.windowStartMs * 1000;
  const we = opts.windowEndMs === undefined ? undefined : opts.windowEndMs * 1000;
  if (ws !== undefined && !points.some((p) => p <= ws)) points.unshift(ws);
  if (we !== undefined && !points.some((p) => p >= we)) points.push(we);

  const medianGapMs = median(gapsBetween(unique.map((r) => usOf(r))).map((g) => g.ms / 1000));

  // in microseconds here: a gap counts when it overlaps the window
  const best = largestGap(points, (g) => !(ws !== undefined && g.endMs < ws) && !(we !== undefined && g.startMs > we));
  return {
    intervalMs: opts.intervalMs,
    sent: opts.sent,
    received,
    lost: opts.sent - received,
    maxGapMs: best ? best.ms / 1000 : undefined,
    maxGapStartMs: best ? best.startMs / 1000 : undefined,
    maxGapEndMs: best ? best.endMs / 1000 : undefined,
    maxRttMs,
    medianGapMs,
  };
}

function usOf(r: TimedReply): number {
  return r.epochUs ?? r.epochMs * 1000;
}

/**
 * First arrival of every sequence number. icmp_seq is 16 bits; it is unrolled by
 * picking the value congruent to it that lies nearest to what the elapsed time since
 * the previous reply predicts (previous seq + elapsed / interval).
 */
function dedupe<T extends TimedReply>(replies: readonly T[], intervalMs: number): T[] {
  const ordered = [...replies].sort((a, b) => usOf(a) - usOf(b));
  const seen = new Set<number>();
  const out: T[] = [];
  let prev: { seq: number; us: number } | undefined;
  for (const r of ordered) {
    let seq = r.seq;
    if (prev) {
      const predicted = prev.seq + (usOf(r) - prev.us) / 1000 / Math.max(intervalMs, 1e-3);
      seq = r.seq + SEQ_MOD * Math.round((predicted - r.seq) / SEQ_MOD);
    }
    prev = { seq, us: usOf(r) };
    if (seen.has(seq)) continue;
    seen.add(seq);
    out.push(r);
  }
  return out;
}

export interface PingProbeOptions {
  /** Where ping runs (the observer); or, on this host, an argv run before `ping`, e.g. `['ip', 'netns', 'exec', 'x']` (may be empty). */
  transport?: Pick<NodeTransport, 'stream'>;
  prefix?: string[];
  target: string;
  /** 1 ms and up (below 2 ms needs root) */
  intervalMs: number;
}

export interface PingResult {
  target: string;
  intervalMs: number;
  argv: string[];
  /** every reply in arrival order, duplicates included */
  replies: PingReply[];
  noAnswer: PingNoAnswer[];
  errors: PingErrorLine[];
  /** ping's own summary lines; undefined if ping died without printing them */
  transmitted: PingTransmitted | undefined;
  rtt: PingRtt | undefined;
  /** counts and gaps; `sent` is ping's `packets transmitted` */
  summary: PingSummary;
  /**
   * Where `summary.sent` came from: ping's summary, or (ping printed none, e.g. it was
   * killed) the highest icmp_seq seen, a lower bound.
   */
  sentFrom: 'ping' | 'highest-seq';
  exitCode: number | undefined;
  signal: string | undefined;
  stderr: string;
}

const STOP_GRACE_MS = 5000;
const HEADER_WAIT_MS = 2000;
const STDERR_KEEP = 16_384;

/** A transport that runs argv behind a plain prefix on this host (tests, and `ping` without a lab). */
function prefixTransport(prefix: readonly string[]): Pick<NodeTransport, 'stream'> {
  const host = new LocalNode('host', '');
  return { stream: (argv) => host.streamPlain([...prefix, ...argv]) };
}

/**
 * The note a result carries when ping kept another interval than asked for: the kernel
 * rounds `-i` of 10 ms and up to its timer ticks (10 ms became about 16 ms here).
 */
export function pingIntervalNote(medianGapMs: number | undefined, askedMs: number): string | undefined {
  if (medianGapMs === undefined || !(medianGapMs > 1.3 * askedMs)) return undefined;
  return `ping kept a ${medianGapMs.toFixed(1)} ms interval, not the ${askedMs} ms asked for (the kernel rounds -i of 10 ms and up to its timer ticks; ask for 9 ms or less for a finer grid)`;
}

/** A running `ping -D -n -O -i interval target`. Dispose it (or `stop()`) to end it. */
export class PingProbe implements AsyncDisposable {
  readonly target: string;
  readonly intervalMs: number;
  readonly argv: string[];

  private readonly proc: StreamingProcess;
  private readonly lines: PingLine[] = [];
  private readonly replyList: PingReply[] = [];
  private stderrText = '';
  private exitInfo: { exitCode: number | undefined; signal: string | undefined; why: string | undefined } | undefined;
  private readonly exited: Promise<void>;
  private headerSeen = false;
  private readonly listeners = new Set<() => void>();
  private stopping: Promise<PingResult> | undefined;

  private constructor(opts: PingProbeOptions) {
    if (!(opts.intervalMs >= 1)) throw new MigralabError('USAGE', `ping interval must be at least 1 ms, got ${opts.intervalMs}`);
    this.target = opts.target;
    this.intervalMs = opts.intervalMs;
    const ping = ['ping', '-D', '-n', '-O', '-i', String(opts.intervalMs / 1000), opts.target];
    this.argv = [...(opts.prefix ?? []), ...ping];
    this.proc = (opts.transport ?? prefixTransport(opts.prefix ?? [])).stream(ping);

    const out = lineReader((l) => this.onStdout(l));
    const err = lineReader((l) => this.onStderr(l));
    const stdoutDone = new Promise<void>((resolve) => {
      if (!this.proc.stdout) return resolve();
      this.proc.stdout.on('data', (b: Buffer) => out.push(b));
      this.proc.stdout.once('close', () => resolve());
    });
    this.proc.stderr?.on('data', (b: Buffer) => err.push(b));
    this.exited = this.proc.exited.then(async (r) => {
      await stdoutDone;
      out.end();
      err.end();
      this.exitInfo = { exitCode: r.exitCode, signal: r.signal, why: r.error };
      this.notify();
    });
  }

  /** Spawns ping; it runs until `stop()` or disposal. */
  static start(opts: PingProbeOptions): PingProbe {
    return new PingProbe(opts);
  }

  /** PID of the process we spawned (ping itself when the prefix execs, as nsenter and `ip netns exec` do). */
  get pid(): number | undefined {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** Replies so far, in arrival order (duplicates included). */
  get replies(): readonly PingReply[] {
    return this.replyList;
  }

  /** Replies received at or after `epochMs`. */
  repliesSince(epochMs: number): PingReply[] {
    return this.replyList.filter((r) => r.epochMs >= epochMs);
  }

  /**
   * Resolves with the first reply (with `sinceMs`: the first received at or after it);
   * rejects on timeout or when ping exits first.
   */
  waitForReply(timeoutMs: number, opts: { sinceMs?: number } = {}): Promise<PingReply> {
    const find = () => this.replyList.find((r) => opts.sinceMs === undefined || r.epochMs >= opts.sinceMs);
    return new Promise<PingReply>((resolve, reject) => {
      const check = () => {
        const r = find();
        if (r) return done(() => resolve(r));
        if (this.exitInfo) {
          return done(() => reject(new MigralabError('LAB', `ping ${this.target} exited before any reply (${this.describeExit()})`)));
        }
      };
      const timer = setTimeout(() => {
        const counts = this.lines.filter((l) => l.kind === 'no-answer').length;
        done(() =>
          reject(
            new MigralabError(
              'LAB',
              `no ping reply from ${this.target} within ${timeoutMs} ms` +
                `${counts ? ` (${counts} probes unanswered)` : ''}${this.lastError() ? `: ${this.lastError()}` : ''}`,
            ),
          ),
        );
      }, timeoutMs);
      const done = (settle: () => void) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        settle();
      };
      this.listeners.add(check);
      check();
    });
  }

  /**
   * Sends SIGINT to ping, waits for its summary and returns everything it printed.
   * Idempotent. If ping ignores SIGINT for 5 s it gets SIGKILL (and the result says
   * `sentFrom: 'highest-seq'`).
   */
  stop(): Promise<PingResult> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop().catch(() => undefined);
  }

  private async doStop(): Promise<PingResult> {
    if (this.running) {
      // ping installs its SIGINT handler before printing its header; a signal that
      // arrives earlier kills it without a summary.
      await this.until(() => this.headerSeen, HEADER_WAIT_MS);
      this.proc.kill('SIGINT');
      if (!(await this.until(() => !this.running, STOP_GRACE_MS))) this.proc.kill('SIGKILL');
    }
    await this.exited;
    return this.result();
  }

  private result(): PingResult {
    const noAnswer = this.lines.filter((l): l is PingNoAnswer => l.kind === 'no-answer');
    const errors = this.lines.filter((l): l is PingErrorLine => l.kind === 'error');
    const transmitted = this.lines.find((l): l is PingTransmitted => l.kind === 'transmitted');
    const rtt = this.lines.find((l): l is PingRtt => l.kind === 'rtt');
    let sent: number;
    let sentFrom: PingResult['sentFrom'];
    if (transmitted) {
      sent = transmitted.transmitted;
      sentFrom = 'ping';
    } else {
      const seqs = [...this.replyList, ...noAnswer].map((l) => l.seq);
      sent = seqs.length ? Math.max(...seqs) : 0;
      sentFrom = 'highest-seq';
    }
    return {
      target: this.target,
      intervalMs: this.intervalMs,
      argv: this.argv,
      replies: [...this.replyList],
      noAnswer,
      errors,
      transmitted,
      rtt,
      summary: summarize(this.replyList, { intervalMs: this.intervalMs, sent }),
      sentFrom,
      exitCode: this.exitInfo?.exitCode,
      signal: this.exitInfo?.signal,
      stderr: this.stderrText,
    };
  }

  private onStdout(line: string): void {
    const parsed = parsePingLine(line);
    if (!parsed) return;
    this.lines.push(parsed);
    if (parsed.kind === 'header') this.headerSeen = true;
    if (parsed.kind === 'reply') this.replyList.push(parsed);
    this.notify();
  }

  private onStderr(line: string): void {
    this.stderrText = (this.stderrText + line + '\n').slice(-STDERR_KEEP);
    const parsed = parsePingLine(line);
    if (parsed?.kind === 'error') this.lines.push(parsed);
  }

  private notify(): void {
    for (const l of [...this.listeners]) l();
  }

  private lastError(): string | undefined {
    return this.stderrText.trim().split('\n').filter(Boolean).at(-1);
  }

  private describeExit(): string {
    const e = this.exitInfo;
    if (!e) return 'running';
    const how = e.why ?? (e.signal ? `killed by ${e.signal}` : `exit ${e.exitCode}`);
    const last = this.lastError();
    return last ? `${how}: ${last}` : how;
  }

  /** Resolves true once cond() holds (checked on every line and at exit), false after timeoutMs. */
  private until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const check = () => {
        if (cond() || !this.running) finish(cond());
      };
      const timer = setTimeout(() => finish(cond()), timeoutMs);
      const finish = (v: boolean) => {
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve(v);
      };
      this.listeners.add(check);
      check();
    });
  }
}

/** Splits a byte stream into lines; handles partial chunks and several lines per chunk. */
function lineReader(onLine: (line: string) => void): { push(b: Buffer): void; end(): void } {
  const decoder = new StringDecoder('utf8');
  let buf = '';
  const drain = () => {
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  };
  let ended = false;
  return {
    push(b) {
      buf += decoder.write(b);
      drain();
    },
    end() {
      if (ended) return;
      ended = true;
      buf += decoder.end();
      drain();
      if (buf) onLine(buf);
      buf = '';
    },
  };
}
