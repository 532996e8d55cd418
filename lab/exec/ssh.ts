/**
 * A node reached over ssh2 (no `ssh` program): commands as argument arrays quoted once
 * (shellJoin), SFTP for files, Unix sockets through OpenSSH's streamlocal forwarding (QMP
 * and the guest shell work across the connection), one connection per host, reused, with
 * keepalives; a dropped connection is a clear error, and the next call connects anew.
 * Host keys are always verified: against a known_hosts file or a pinned SHA256
 * fingerprint; an unknown or changed key is a hard error naming the host and both
 * fingerprints. No password is ever used or stored.
 */
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Duplex as DuplexBase, PassThrough, type Duplex, type Readable } from 'node:stream';
import { spawn } from 'node:child_process';
import { Client, type ClientChannel, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { MigralabError } from '../errors.ts';
import type { RunOptions, RunResult } from './run.ts';
import type { NodeTransport, ProcessHandle, StreamingProcess } from './transport.ts';

export interface SshTarget {
  /** The node's name in the lab (for messages). */
  name: string;
  host: string;
  port: number;
  user: string;
  /** Private key file; without it, the SSH agent ($SSH_AUTH_SOCK). */
  identityFile?: string;
  /** OpenSSH known_hosts file to verify the host key against... */
  knownHosts?: string;
  /** ...or the host key's pinned fingerprint, `SHA256:...` as ssh-keygen -lf prints it. */
  hostKey?: string;
  /** A program whose stdin/stdout is the TCP connection (OpenSSH's ProxyCommand; %h and %p are replaced). */
  proxyCommand?: string[];
  /** Prefix for commands when the user is not root (`sudo -n`). */
  sudo?: boolean;
  keepaliveMs?: number;
  connectTimeoutMs?: number;
}

/** Quotes argv for the remote shell, once, in one place. */
export function shellJoin(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** OpenSSH's fingerprint of a raw host key: SHA256:<base64, no padding>. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

/**
 * The keys a known_hosts file lists for host[:port] (plain and hashed `|1|salt|hash`
 * entries; `[host]:port` for ports other than 22). Pure.
 */
export function knownKeys(text: string, host: string, port: number): Buffer[] {
  const names = port === 22 ? [host] : [`[${host}]:${port}`];
  const out: Buffer[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const parts = line.split(/\s+/);
    const [hosts, , b64] = parts[0]!.startsWith('@') ? parts.slice(1) : parts;
    if (!hosts || !b64) continue;
    const matches = hosts.split(',').some((h) => {
      if (h.startsWith('|1|')) {
        const [, , salt, hash] = h.split('|');
        return names.some((n) => createHmac('sha1', Buffer.from(salt!, 'base64')).update(n).digest('base64') === hash);
      }
      return names.includes(h);
    });
    if (matches) out.push(Buffer.from(b64, 'base64'));
  }
  return out;
}

/** Decides about a presented host key (pure): ok, or the error to raise. */
export function verifyHostKey(target: Pick<SshTarget, 'name' | 'host' | 'port' | 'knownHosts' | 'hostKey'>, key: Buffer, knownHostsText?: string): { ok: true } | { ok: false; message: string } {
  const got = fingerprint(key);
  const where = `${target.name} (${target.host}:${target.port})`;
  if (target.hostKey) {
    if (target.hostKey === got) return { ok: true };
    return { ok: false, message: `host key of ${where} changed: expected ${target.hostKey}, the host presented ${got}. Refusing to connect` };
  }
  if (knownHostsText !== undefined) {
    const keys = knownKeys(knownHostsText, target.host, target.port);
    if (keys.some((k) => k.equals(key))) return { ok: true };
    if (keys.length) return { ok: false, message: `host key of ${where} changed: ${target.knownHosts} has ${keys.map(fingerprint).join(', ')}, the host presented ${got}. Refusing to connect` };
    return { ok: false, message: `host key of ${where} is unknown: ${target.knownHosts} has no entry for it; the host presented ${got}. Add it (ssh-keyscan) or pin it (hostKey: ${got})` };
  }
  return { ok: false, message: `no known_hosts file or pinned host key for ${where}: host keys are always verified (the host presented ${got})` };
}

class SshProcess implements ProcessHandle {
  constructor(
    private readonly node: SshNode,
    readonly pid: number,
    readonly startTime: string | undefined,
  ) {}
  async alive(): Promise<boolean> {
    const st = await this.node.procStartTime(this.pid);
    return st !== undefined && (this.startTime === undefined || st === this.startTime);
  }
  async signal(sig: NodeJS.Signals): Promise<void> {
    if (!(await this.alive())) return;
    await this.node.run(['kill', `-${sig.replace(/^SIG/, '')}`, String(this.pid)], { check: false });
  }
}

export class SshNode implements NodeTransport {
  readonly kind = 'ssh' as const;
  private client: Client | undefined;
  private connecting: Promise<Client> | undefined;
  private sftpP: Promise<SFTPWrapper> | undefined;
  private dropped: string | undefined;

  constructor(readonly target: SshTarget) {}

  get name(): string {
    return this.target.name;
  }

  /** The one connection to this host (made on first use, made again after a drop). */
  connection(): Promise<Client> {
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async open(): Promise<Client> {
    const t = this.target;
    const where = `${t.name} (${t.user}@${t.host}:${t.port})`;
    let knownText: string | undefined;
    if (!t.hostKey && t.knownHosts) {
      try {
        knownText = readFileSync(t.knownHosts, 'utf8');
      } catch (e) {
        throw new MigralabError('CONFIG', `known_hosts file ${t.knownHosts} for ${t.name}: ${(e as Error).message}`);
      }
    }
    let privateKey: Buffer | undefined;
    if (t.identityFile) {
      try {
        privateKey = readFileSync(t.identityFile);
      } catch (e) {
        throw new MigralabError('CONFIG', `identity file ${t.identityFile} for ${t.name}: ${(e as Error).message}`);
      }
    }
    if (!privateKey && !process.env.SSH_AUTH_SOCK) throw new MigralabError('CONFIG', `${t.name}: no identityFile and no SSH agent (SSH_AUTH_SOCK) to log in with`);
    let hostKeyError: string | undefined;
    const c = new Client();
    const cfg: ConnectConfig = {
      username: t.user,
      ...(privateKey ? { privateKey } : { agent: process.env.SSH_AUTH_SOCK }),
      readyTimeout: t.connectTimeoutMs ?? 15_000,
      keepaliveInterval: t.keepaliveMs ?? 5000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer) => {
        const v = verifyHostKey(t, key, knownText);
        if (!v.ok) hostKeyError = v.message;
        return v.ok;
      },
    };
    if (t.proxyCommand) {
      const argv = t.proxyCommand.map((a) => a.replace(/%h/g, t.host).replace(/%p/g, String(t.port)));
      const p = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'ignore'] });
      const sock = new DuplexPair(p.stdout!, p.stdin!, () => p.kill());
      p.once('exit', () => sock.destroy());
      p.stdin!.on('error', (e) => sock.destroy(e));
      cfg.sock = sock as unknown as ConnectConfig['sock'];
    } else {
      cfg.host = t.host;
      cfg.port = t.port;
    }
    await new Promise<void>((resolve, reject) => {
      c.once('ready', () => resolve());
      c.once('error', (e: Error & { level?: string }) => {
        if (hostKeyError) reject(new MigralabError('CONFIG', hostKeyError));
        else if (e.level === 'client-authentication') reject(new MigralabError('PREREQ', `${where}: authentication failed (${t.identityFile ? `key ${t.identityFile}` : 'SSH agent'}): ${e.message}`));
        // through a namespace the connection is a pipe to a forwarder: a host that does not answer shows as a connection lost before the handshake
        else reject(new MigralabError('LAB', `cannot connect to ${where}: ${e.message}${/before handshake/i.test(e.message) ? ' (nothing answered there: is the host up, and its sshd listening on that port?)' : ''}`));
      });
      c.connect(cfg);
    });
    c.on('error', (e) => (this.dropped = e.message));
    c.on('close', () => {
      this.dropped ??= 'connection closed';
      this.client = undefined;
      this.sftpP = undefined;
      this.sessions = [];
    });
    this.dropped = undefined;
    this.client = c;
    return c;
  }

  /** Closes the connection (the next call connects anew). */
  close(): void {
    for (const x of this.sessions) x.close();
    this.sessions = [];
    this.client?.end();
    this.client = undefined;
    this.sftpP = undefined;
  }

  private wrap(argv: readonly string[]): string {
    return this.target.sudo ? `sudo -n ${shellJoin(argv)}` : shellJoin(argv);
  }

  /** Why `sudo -n true` fails for the login user (its message, in English), or undefined when it works; asked without the sudo prefix. */
  async sudoRefusal(): Promise<string | undefined> {
    const r = await this.execChannel('LC_ALL=C sudo -n true', undefined, 30_000, 'sudo -n true');
    if (r.exitCode === 0) return undefined;
    const text = r.stderr.trim().split('\n').pop() ?? '';
    return r.exitCode === 127 && !text.includes('sudo:') ? 'sudo is not installed' : text || `exit ${r.exitCode}`;
  }

  private async channel(command: string): Promise<ClientChannel> {
    const c = await this.connection();
    return new Promise((resolve, reject) =>
      c.exec(command, (err, ch) => (err ? reject(new MigralabError('LAB', `${this.name}: ${err.message} (${command.slice(0, 120)})`)) : resolve(ch))),
    );
  }

  async run(argv: readonly string[], opts: RunOptions & { stdin?: Buffer } = {}): Promise<RunResult> {
    const command = this.wrap(argv);
    // Commands without input go through a shell session kept open: an ssh session per command costs
    // the host's login shell start-up each time (seen: 150-250 ms with a busy ~/.bashrc).
    if (!opts.stdin && opts.input === undefined) return this.check(argv, await this.viaSession(command, opts.timeoutMs ?? 120_000), opts);
    return this.check(argv, await this.execChannel(command, opts.stdin ?? opts.input, opts.timeoutMs ?? 120_000, argv.join(' ')), opts);
  }

  /** One command on its own exec channel: stdout, stderr, exit status (the connection dropping rejects). */
  private async execChannel(command: string, input: Buffer | string | undefined, timeoutMs: number, what: string): Promise<RunResult> {
    const ch = await this.channel(command);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    ch.on('data', (b: Buffer) => out.push(b));
    ch.stderr.on('data', (b: Buffer) => err.push(b));
    const exitCode = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        ch.close();
        reject(new MigralabError('LAB', `${this.name}: ${what}: timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      let code: number | undefined;
      ch.on('exit', (c: number | null) => (code = c ?? -1));
      ch.on('close', () => {
        clearTimeout(timer);
        if (code === undefined) reject(new MigralabError('LAB', `${this.name}: the ssh connection dropped while running ${what}${this.dropped ? ` (${this.dropped})` : ''}`));
        else resolve(code);
      });
      ch.end(input);
    });
    return { stdout: Buffer.concat(out).toString('utf8').replace(/\n$/, ''), stderr: Buffer.concat(err).toString('utf8').replace(/\n$/, ''), exitCode };
  }

  private check(argv: readonly string[], result: RunResult, opts: RunOptions): RunResult {
    const exitCode = result.exitCode;
    // sudo -n that would ask for a password exits 1 with this on stderr (127 in older sudo)
    if (exitCode !== 0 && this.target.sudo && /^sudo: (a password is required|a terminal is required)|may not run sudo/m.test(result.stderr))
      throw new MigralabError('PREREQ', `${this.name}: ${this.target.user} is not root and sudo asks for a password: migralab needs root or password-less sudo there`);
    if (exitCode !== 0 && (opts.check ?? true))
      throw new MigralabError('LAB', `${this.name}: ${argv.join(' ')}: exit ${exitCode}${result.stderr ? `: ${result.stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`);
    return result;
  }

  private sessions: ShellSession[] = [];
  private waitingForSession: (() => void)[] = [];

  /** Runs a command in one of up to 4 long-lived `sh` sessions on the host. */
  private async viaSession(command: string, timeoutMs: number): Promise<RunResult> {
    let sess = this.sessions.find((x) => !x.busy && x.open);
    if (!sess && this.sessions.filter((x) => x.open).length < 4) {
      sess = new ShellSession(await this.channel('exec sh'));
      this.sessions.push(sess);
    }
    if (!sess) {
      await new Promise<void>((r) => this.waitingForSession.push(r));
      return this.viaSession(command, timeoutMs);
    }
    this.sessions = this.sessions.filter((x) => x.open);
    try {
      return await sess.run(command, timeoutMs, () => this.dropped);
    } finally {
      this.waitingForSession.shift()?.();
    }
  }

  /** Field 22 of /proc/PID/stat on the host, or undefined when the process is gone (or a zombie). */
  async procStartTime(pid: number): Promise<string | undefined> {
    const r = await this.run(['cat', `/proc/${pid}/stat`], { check: false });
    if (r.exitCode !== 0) return undefined;
    const f = r.stdout.slice(r.stdout.lastIndexOf(')') + 2).split(' ');
    return f[0] === 'Z' || f[0] === 'X' ? undefined : f[19];
  }

  async spawn(argv: readonly string[], opts: { logFile: string }): Promise<ProcessHandle> {
    // setsid: the process outlives this ssh session; its PID is printed before anything else.
    const script = `setsid ${shellJoin(argv)} >>${shellJoin([opts.logFile])} 2>&1 </dev/null & echo $!`;
    const r = await this.run(['sh', '-c', script]);
    const pid = Number(r.stdout.trim());
    if (!Number.isInteger(pid) || pid <= 0) throw new MigralabError('LAB', `${this.name}: could not start ${argv[0]}: ${r.stdout} ${r.stderr}`);
    return new SshProcess(this, pid, await this.procStartTime(pid));
  }

  process(pid: number, startTime?: string): ProcessHandle {
    return new SshProcess(this, pid, startTime);
  }

  stream(argv: readonly string[]): StreamingProcess {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let pid: number | undefined;
    let pidLine = '';
    const script = `echo "@@pid $$"; exec ${this.wrap(argv)}`;
    const exited = (async () => {
      try {
        const ch = await this.channel(`sh -c ${shellJoin([script])}`);
        ch.stderr.pipe(stderr);
        ch.on('data', (b: Buffer) => {
          if (pid === undefined) {
            pidLine += b.toString('utf8');
            const nl = pidLine.indexOf('\n');
            if (nl < 0) return;
            pid = Number(/@@pid (\d+)/.exec(pidLine.slice(0, nl))?.[1]);
            const rest = pidLine.slice(nl + 1);
            if (rest) stdout.write(rest);
            return;
          }
          stdout.write(b);
        });
        return await new Promise<{ exitCode: number | undefined; signal: string | undefined; error?: string }>((resolve) => {
          let code: number | undefined;
          let signal: string | undefined;
          ch.on('exit', (c: number | null, s?: string) => {
            code = c ?? undefined;
            signal = s ? `SIG${s}` : undefined;
          });
          ch.on('close', () => {
            stdout.end();
            stderr.end();
            resolve({ exitCode: code, signal, ...(code === undefined && !signal ? { error: `ssh connection to ${this.name} dropped` } : {}) });
          });
        });
      } catch (e) {
        stdout.end();
        stderr.end();
        return { exitCode: undefined, signal: undefined, error: (e as Error).message };
      }
    })();
    return {
      get pid() {
        return pid;
      },
      stdout,
      stderr,
      exited,
      kill: (sig = 'SIGTERM') => {
        if (pid !== undefined) void this.run(['kill', `-${sig.replace(/^SIG/, '')}`, String(pid)], { check: false }).catch(() => {});
      },
    };
  }

  private sftp(): Promise<SFTPWrapper> {
    this.sftpP ??= this.connection().then((c) => new Promise<SFTPWrapper>((resolve, reject) => c.sftp((e, s) => (e ? reject(e) : resolve(s)))));
    return this.sftpP;
  }

  async readFile(path: string): Promise<Buffer> {
    if (this.target.sudo) {
      const c = await this.channel(this.wrap(['cat', path]));
      return collect(c, `${this.name}: cat ${path}`);
    }
    const s = await this.sftp();
    return new Promise((resolve, reject) => s.readFile(path, (e: Error | undefined, b: Buffer) => (e ? reject(new MigralabError('LAB', `${this.name}: read ${path}: ${e.message}`)) : resolve(b))));
  }

  async writeFile(path: string, data: string | Buffer, opts: { mode?: number } = {}): Promise<void> {
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    const mode = opts.mode ?? 0o600;
    if (this.target.sudo) {
      await this.run(['sh', '-c', 'umask 077; cat >"$1" && chmod "$2" "$1"', 'sh', path, mode.toString(8)], { stdin: buf });
      return;
    }
    if (buf.length > 1 << 20) {
      // large files (the guest image) stream through one channel: SFTP's request-per-chunk is slow
      await this.run(['sh', '-c', 'umask 077; cat >"$1" && chmod "$2" "$1"', 'sh', path, mode.toString(8)], { stdin: buf, timeoutMs: 300_000 });
      return;
    }
    const s = await this.sftp();
    await new Promise<void>((resolve, reject) => s.writeFile(path, buf, { mode }, (e: Error | undefined | null) => (e ? reject(new MigralabError('LAB', `${this.name}: write ${path}: ${e.message}`)) : resolve())));
    await this.run(['chmod', mode.toString(8), path]);
  }

  async mkdir(path: string, opts: { mode?: number } = {}): Promise<void> {
    await this.run(['mkdir', '-p', '-m', (opts.mode ?? 0o700).toString(8), path]);
  }

  async remove(path: string): Promise<void> {
    await this.run(['rm', '-rf', '--', path]);
  }

  async exists(path: string): Promise<boolean> {
    return (await this.run(['test', '-e', path], { check: false })).exitCode === 0;
  }

  async connect(unixPath: string): Promise<Duplex> {
    if (this.target.sudo) return this.connectAsRoot(unixPath);
    const c = await this.connection();
    return new Promise((resolve, reject) =>
      c.openssh_forwardOutStreamLocal(unixPath, (err, ch) => {
        if (err) {
          const e = new Error(`${this.name}: cannot open ${unixPath} over ssh: ${err.message}`) as NodeJS.ErrnoException;
          // the socket not being there yet is retried by the callers, as locally
          if (/open failed|No such file|Connection refused|administratively prohibited/i.test(err.message)) e.code = 'ENOENT';
          reject(e);
        } else resolve(ch as unknown as Duplex);
      }),
    );
  }

  /** A Unix socket on the host, opened as root through sudo (UNIX_RELAY); ENOENT while it is not there yet, as locally. */
  private async connectAsRoot(unixPath: string): Promise<Duplex> {
    const ch = await this.channel(this.wrap(['perl', '-e', UNIX_RELAY, unixPath]));
    return new Promise((resolve, reject) => {
      let err = '';
      const onErr = (b: Buffer) => {
        err += b.toString('utf8');
        if (err.includes('@@connected\n')) {
          ch.stderr.off('data', onErr);
          ch.off('close', onClose);
          resolve(ch as unknown as Duplex);
        }
      };
      const onClose = () => {
        const e = new Error(`${this.name}: cannot open ${unixPath} as root over ssh: ${err.trim() || 'the relay exited'}`) as NodeJS.ErrnoException;
        if (/No such file|Connection refused/i.test(err)) e.code = 'ENOENT';
        reject(e);
      };
      ch.stderr.on('data', onErr);
      ch.on('close', onClose);
    });
  }
}

/**
 * A relay between its stdin/stdout and a Unix socket, in Perl (perl-base is Essential on
 * Debian: every host has it). Run under sudo: the sockets of QEMUs started as root are not
 * writable by the login user, so sshd's own socket forwarding cannot open them.
 */
const UNIX_RELAY = [
  'use strict; use Socket; use IO::Socket::UNIX; use IO::Select;',
  'my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $ARGV[0]) or do { print STDERR "connect $ARGV[0]: $!\\n"; exit 1 };',
  'syswrite(STDERR, "\\@\\@connected\\n");',
  'my $sel = IO::Select->new(\\*STDIN, $s);',
  'while (my @r = $sel->can_read) { for my $h (@r) {',
  '  my $n = sysread($h, my $buf, 65536);',
  '  if (!$n) { exit 0 if $h == $s; $sel->remove(\\*STDIN); shutdown($s, 1); next }',
  '  my $out = $h == $s ? \\*STDOUT : $s;',
  '  for (my $o = 0; $o < $n;) { my $w = syswrite($out, $buf, $n - $o, $o); exit 0 unless defined $w; $o += $w }',
  '} }',
].join('\n');

/**
 * A `sh` on the host reading commands from its stdin: each command's stdout and stderr
 * come back base64-framed with its exit status, between markers with a per-call nonce.
 */
class ShellSession {
  busy = false;
  open = true;
  private buf = '';
  private counter = 0;
  private listener: (() => void) | undefined;

  constructor(private readonly ch: ClientChannel) {
    ch.on('data', (b: Buffer) => {
      this.buf += b.toString('latin1');
      this.listener?.();
    });
    ch.stderr.on('data', () => {});
    ch.on('close', () => {
      this.open = false;
      this.listener?.();
    });
  }

  run(command: string, timeoutMs: number, why: () => string | undefined): Promise<RunResult> {
    this.busy = true;
    const n = `${process.pid}x${this.counter++}x${Math.random().toString(36).slice(2, 8)}`;
    const o = `/tmp/.migralab-${n}.out`;
    const e = `/tmp/.migralab-${n}.err`;
    this.ch.write(
      `{ ${command} ; } </dev/null >${o} 2>${e}; rc=$?; printf '\\n@@O${n} %s\\n' "$(base64 -w0 <${o})"; printf '@@E${n} %s\\n' "$(base64 -w0 <${e})"; rm -f ${o} ${e}; printf '@@R${n} %s\\n' "$rc"\n`,
    );
    const re = new RegExp(`\\n@@O${n} (\\S*)\\n@@E${n} (\\S*)\\n@@R${n} (\\d+)\\n`);
    return new Promise<RunResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.listener = undefined;
        this.close();
        reject(new MigralabError('LAB', `${command.slice(0, 120)}: timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.listener = () => {
        const m = re.exec(this.buf);
        if (m) {
          clearTimeout(timer);
          this.buf = this.buf.slice(m.index + m[0].length);
          this.listener = undefined;
          this.busy = false;
          const dec = (x: string) => Buffer.from(x, 'base64').toString('utf8').replace(/\n$/, '');
          resolve({ stdout: dec(m[1]!), stderr: dec(m[2]!), exitCode: Number(m[3]) });
        } else if (!this.open) {
          clearTimeout(timer);
          this.listener = undefined;
          reject(new MigralabError('LAB', `the ssh connection dropped while running ${command.slice(0, 120)}${why() ? ` (${why()})` : ''}`));
        }
      };
    });
  }

  close(): void {
    this.open = false;
    this.ch.close();
  }
}

function collect(ch: ClientChannel, what: string): Promise<Buffer> {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  ch.on('data', (b: Buffer) => out.push(b));
  ch.stderr.on('data', (b: Buffer) => err.push(b));
  return new Promise((resolve, reject) => {
    let code: number | undefined;
    ch.on('exit', (c: number | null) => (code = c ?? -1));
    ch.on('close', () => (code === 0 ? resolve(Buffer.concat(out)) : reject(new MigralabError('LAB', `${what}: exit ${code}: ${Buffer.concat(err).toString().trim()}`))));
    ch.end();
  });
}

/** A Duplex over a readable and a writable (a proxy command's stdout and stdin). */
class DuplexPair extends DuplexBase {
  constructor(
    private readonly r: Readable,
    private readonly w: NodeJS.WritableStream,
    private readonly onDestroy: () => void,
  ) {
    // Not half-open: the far side's end (sshd gone, the proxy exited) closes this stream, so
    // ssh2 sees its connection close and fails every channel on it at once; half-open, the
    // connection lingered and a QMP call on it only gave up at its reply timeout.
    super({ allowHalfOpen: false });
    r.on('data', (b: Buffer) => {
      if (!this.push(b)) r.pause();
    });
    r.on('end', () => this.push(null));
  }
  override _read(): void {
    this.r.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.w.write(chunk, cb);
  }
  override _final(cb: (e?: Error | null) => void): void {
    this.w.end();
    cb();
  }
  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    this.onDestroy();
    cb(err);
  }
}
