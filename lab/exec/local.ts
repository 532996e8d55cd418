import { spawn } from 'node:child_process';
import { openSync, closeSync, existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { execa } from 'execa';
import { MigralabError } from '../errors.ts';
import { processAlive, processStartTime } from './proc.ts';
import { run, type RunOptions, type RunResult } from './run.ts';
import type { NodeTransport, ProcessHandle, StreamingProcess } from './transport.ts';

/** A process on this host, known by PID and kernel start time (a reused PID is not ours). */
export class LocalProcess implements ProcessHandle {
  constructor(
    readonly pid: number,
    readonly startTime: string | undefined = processStartTime(pid),
  ) {}

  async alive(): Promise<boolean> {
    return this.aliveNow();
  }

  aliveNow(): boolean {
    if (!processAlive(this.pid)) return false;
    return this.startTime === undefined || processStartTime(this.pid) === this.startTime;
  }

  async signal(sig: NodeJS.Signals): Promise<void> {
    if (!this.aliveNow()) return;
    try {
      process.kill(this.pid, sig);
    } catch {
      /* gone meanwhile */
    }
  }
}

/**
 * A lab node on this host: commands run under `nsenter` into the node's network
 * namespace and, for compute nodes, its private mount and UTS namespaces (own /run,
 * /etc/hosts, /sys, host name). Files of the lab live outside those private mounts, so
 * file operations act on this host's file system directly.
 */
export class LocalNode implements NodeTransport {
  readonly kind = 'local' as const;
  /** argv prefix that runs a program on this node. */
  readonly prefix: readonly string[];

  constructor(
    readonly name: string,
    readonly netnsName: string,
    ns: { mount?: string; uts?: string } = {},
  ) {
    // no namespace at all: this host itself
    this.prefix = netnsName
      ? ['nsenter', `--net=/run/netns/${netnsName}`, ...(ns.mount ? [`--mount=${ns.mount}`] : []), ...(ns.uts ? [`--uts=${ns.uts}`] : []), '--']
      : [];
  }

  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return run([...this.prefix, ...argv], opts);
  }

  /** Connects a TCP stream from inside this node's network namespace (a program's stdio, as OpenSSH's ProxyCommand). */
  tcpPipeArgv(host: string, port: number): string[] {
    const js = `const s=require('net').connect(${port},${JSON.stringify(host)});s.setNoDelay(true);process.stdin.pipe(s);s.pipe(process.stdout);s.on('error',e=>{process.stderr.write(String(e));process.exit(1)});s.on('close',()=>process.exit(0))`;
    return [...this.prefix, process.execPath, '-e', js];
  }

  async spawn(argv: readonly string[], opts: { logFile: string }): Promise<LocalProcess> {
    const fd = openSync(opts.logFile, 'a', 0o600);
    try {
      const full = [...this.prefix, ...argv];
      const child = spawn(full[0]!, full.slice(1), { detached: true, stdio: ['ignore', fd, fd] });
      if (child.pid === undefined) throw new MigralabError('LAB', `could not start ${argv[0]} on ${this.name}`);
      child.unref();
      return new LocalProcess(child.pid);
    } finally {
      closeSync(fd);
    }
  }

  process(pid: number, startTime?: string): LocalProcess {
    return new LocalProcess(pid, startTime);
  }

  stream(argv: readonly string[]): StreamingProcess {
    return this.streamPlain([...this.prefix, ...argv]);
  }

  /** argv as given, on this host (no namespace prefix). */
  streamPlain(full: readonly string[]): StreamingProcess {
    const p = execa(full[0]!, full.slice(1), { reject: false, buffer: false, stdin: 'ignore', cleanup: true });
    const exited = p.then((r) => ({
      exitCode: r.exitCode,
      signal: r.signal,
      ...(r.failed && r.code === 'ENOENT' ? { error: `${full[0]}: program not found` } : r.failed && !r.exitCode && !r.signal ? { error: r.shortMessage } : {}),
    }));
    return { pid: p.pid, stdout: p.stdout!, stderr: p.stderr!, exited, kill: (sig = 'SIGTERM') => void p.kill(sig) };
  }

  readFile(path: string): Promise<Buffer> {
    return readFile(path);
  }

  async writeFile(path: string, data: string | Buffer, opts: { mode?: number } = {}): Promise<void> {
    await writeFile(path, data, { mode: opts.mode ?? 0o600 });
    if (opts.mode !== undefined) await chmod(path, opts.mode);
  }

  async mkdir(path: string, opts: { mode?: number } = {}): Promise<void> {
    await mkdir(path, { recursive: true, mode: opts.mode ?? 0o700 });
  }

  remove(path: string): Promise<void> {
    return rm(path, { recursive: true, force: true });
  }

  async exists(path: string): Promise<boolean> {
    return existsSync(path);
  }

  connect(unixPath: string): Promise<Duplex> {
    return connectUnix(unixPath);
  }

  /**
   * A TCP stream to host:port as this node's network namespace reaches it (a guest's serial
   * port that nova binds on the node's lab address, say): a small relay process in the
   * namespace, its stdio the stream. Resolves once it is connected; the relay ends with it.
   */
  connectTcp(host: string, port: number, timeoutMs = 5000): Promise<Duplex> {
    const js = `const s=require('net').connect(${port},${JSON.stringify(host)});s.setNoDelay(true);s.on('connect',()=>{process.stderr.write('connected\\n');process.stdin.pipe(s);s.pipe(process.stdout)});s.on('error',e=>{process.stderr.write('error '+(e.code||'')+' '+e.message+'\\n');process.exit(1)});s.on('close',()=>process.exit(0));process.stdin.on('end',()=>s.end())`;
    const full = [...this.prefix, process.execPath, '-e', js];
    return new Promise((resolve, reject) => {
      const child = spawn(full[0]!, full.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
      let err = '';
      let settled = false;
      const fail = (why: string, code?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(Object.assign(new Error(`${host}:${port} on ${this.name}: ${why}`), code ? { code } : {}));
      };
      const timer = setTimeout(() => fail(`no connection within ${timeoutMs} ms`), timeoutMs);
      child.once('error', (e) => fail(e.message));
      child.once('exit', () => {
        const m = /^error (\S*) (.*)$/m.exec(err);
        fail(m ? m[2]! : err.trim() || 'connection closed', m?.[1] || undefined);
      });
      const onErr = (b: Buffer) => {
        err += b.toString('utf8');
        if (settled || !err.startsWith('connected\n')) return;
        settled = true;
        clearTimeout(timer);
        child.stderr.off('data', onErr);
        child.stderr.resume(); // later output (the relay's own error when the far end goes) is not ours to parse
        const d = Duplex.from({ readable: child.stdout, writable: child.stdin });
        d.on('close', () => child.kill('SIGTERM'));
        child.once('exit', () => d.destroy());
        d.on('error', () => {});
        resolve(d);
      };
      child.stderr.on('data', onErr);
    });
  }
}

/** A connected stream to a Unix socket on this host. */
export function connectUnix(path: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(path);
    const onError = (e: Error) => {
      s.destroy();
      reject(e);
    };
    s.once('error', onError);
    s.once('connect', () => {
      s.off('error', onError);
      s.on('error', () => {}); // until the user attaches its own listener
      resolve(s);
    });
  });
}
