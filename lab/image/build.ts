/**
 * Builds the guest image from the host's own Debian packages: the kernel from
 * linux-image-amd64 and an initramfs around busybox-static plus the virtio/vfat
 * modules and migralab's own guest programs (`guest-programs/*.c`, compiled static
 * with the host's gcc). Content-addressed cache: `<cacheDir>/<sha256>/{vmlinuz,initrd.img}`.
 */
import { createHash } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { access, chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { execa } from 'execa';
import { MigralabError } from '../errors.ts';
import { writeCpio, type CpioEntry } from './cpio.ts';
import { CONSOLE_TTY, IDENTITY_PROGRAM, MODULE_LIST_PATH, PROBE_CMDLINE_FLAG, identityScript, initScript } from './init.ts';
import { GUEST_MODULES, parseModulesBuiltin, parseModulesDep, resolveModules } from './modules.ts';

/** Bump when the image layout changes in a way the hashed inputs do not capture. */
export const IMAGE_FORMAT_VERSION = 'migralab-guest-image/2';

/**
 * Static C programs compiled on the host and installed in the guest as `/bin/<name>`:
 * mlload (paced memory/disk load, lab/guest/workload.ts) and mlprobe (pause probe and
 * guest clock reads, lab/guest/probe.ts).
 */
export const GUEST_PROGRAMS = ['mlload', 'mlprobe'] as const;
export type GuestProgram = (typeof GUEST_PROGRAMS)[number];
/** Headers the programs include: part of the cache key too. */
const GUEST_PROGRAM_HEADERS = ['common.h', 'ramcheck.h'];
const GUEST_PROGRAM_DIR = fileURLToPath(new URL('./guest-programs/', import.meta.url));
/** Part of the cache key: a change of flags rebuilds the image. */
const GCC_FLAGS = ['-static', '-O2', '-s', '-Wall', '-Wextra', '-std=gnu11'];
const GCC_PACKAGES = 'install the Debian packages gcc libc6-dev';

export interface GuestImage {
  /** Path of the kernel copy inside the cache entry. */
  kernel: string;
  /** Path of the gzip'ed newc initramfs. */
  initrd: string;
  /** sha256 (hex) of every input; also the cache entry's directory name. */
  hash: string;
  kernelVersion: string;
  /** True when the image was already in the cache and nothing was built. */
  cached: boolean;
}

export interface BuildOptions {
  cacheDir: string;
  /** A kernel image path; default: the newest /boot/vmlinuz-*. */
  kernel?: string;
  onProgress?: (msg: string) => void;
  /** Roots to look in (tests); default '/boot', '/lib/modules', busybox on /usr/bin or /bin. */
  bootDir?: string;
  modulesRoot?: string;
  busybox?: string;
  /** C compiler for the guest programs; default 'gcc'. */
  gcc?: string;
}

const BUSYBOX_CANDIDATES = ['/usr/bin/busybox', '/bin/busybox'];

/** The kernel command line for guests booted from this image. */
export function kernelCmdline(opts: { probe?: boolean } = {}): string {
  const parts = [
    `console=${path.basename(CONSOLE_TTY)}`, // ttyS0: kernel messages and markers (QEMU's first -serial)
    'quiet',
    'loglevel=3',
    'panic=-1', // reboot at once on panic: with -no-reboot QEMU exits instead of hanging
    'rdinit=/init',
    'mitigations=off', // nothing to protect inside a throwaway lab guest; TCG runs faster
    'tsc=reliable', // TCG clocks jitter; keep the clocksource watchdog quiet
    'no_timer_check',
    'random.trust_cpu=on',
  ];
  if (opts.probe) parts.push(PROBE_CMDLINE_FLAG);
  return parts.join(' ');
}

function versionCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}

async function exists(p: string, mode = fsc.R_OK): Promise<boolean> {
  try {
    await access(p, mode);
    return true;
  } catch {
    return false;
  }
}

async function findKernel(opts: BuildOptions): Promise<{ kernel: string; version: string }> {
  if (opts.kernel) {
    const base = path.basename(opts.kernel);
    if (!base.startsWith('vmlinuz-')) {
      throw new MigralabError('PREREQ', `kernel ${opts.kernel}: expected a file named vmlinuz-<version> (its modules live in /lib/modules/<version>)`);
    }
    if (!(await exists(opts.kernel))) throw new MigralabError('PREREQ', `kernel ${opts.kernel} is missing or unreadable`);
    return { kernel: opts.kernel, version: base.slice('vmlinuz-'.length) };
  }
  const bootDir = opts.bootDir ?? '/boot';
  let names: string[] = [];
  try {
    names = (await readdir(bootDir)).filter((n) => n.startsWith('vmlinuz-'));
  } catch {
    // handled below
  }
  names.sort((a, b) => versionCompare(b, a));
  const newest = names[0];
  if (!newest) {
    throw new MigralabError('PREREQ', `no kernel found (${bootDir}/vmlinuz-*): install the Debian package linux-image-amd64`);
  }
  const kernel = path.join(bootDir, newest);
  if (!(await exists(kernel))) {
    throw new MigralabError('PREREQ', `kernel ${kernel} is not readable (run as root, or pass another kernel)`);
  }
  return { kernel, version: newest.slice('vmlinuz-'.length) };
}

/** True when the ELF file has a PT_INTERP header, i.e. needs a dynamic loader. */
export function isDynamicElf(buf: Buffer): boolean {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) return false;
  const is64 = buf[4] === 2;
  const le = buf[5] === 1;
  const u16 = (o: number) => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
  const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const phoff = is64 ? Number(le ? buf.readBigUInt64LE(32) : buf.readBigUInt64BE(32)) : u32(28);
  const phentsize = u16(is64 ? 54 : 42);
  const phnum = u16(is64 ? 56 : 44);
  for (let i = 0; i < phnum; i++) {
    const off = phoff + i * phentsize;
    if (off + 4 > buf.length) break;
    if (u32(off) === 3) return true; // PT_INTERP
  }
  return false;
}

async function findBusybox(opts: BuildOptions): Promise<{ path: string; data: Buffer }> {
  const candidates = opts.busybox ? [opts.busybox] : BUSYBOX_CANDIDATES;
  for (const c of candidates) {
    if (!(await exists(c))) continue;
    const data = await readFile(c);
    if (isDynamicElf(data)) {
      throw new MigralabError('PREREQ', `${c} is dynamically linked and cannot run alone in the guest: install the Debian package busybox-static`);
    }
    return { path: c, data };
  }
  throw new MigralabError('PREREQ', `busybox not found (${candidates.join(', ')}): install the Debian package busybox-static`);
}

interface Toolchain {
  gcc: string;
  /** `gcc --version` output: part of the cache key. */
  version: string;
  /** The static C library gcc links with -static; its bytes are part of the cache key. */
  libcA: { path: string; data: Buffer };
}

/** Finds gcc and its static libc, or says which Debian packages are missing. */
async function findToolchain(opts: BuildOptions): Promise<Toolchain> {
  const gcc = opts.gcc ?? 'gcc';
  const v = await execa(gcc, ['--version'], { reject: false, timeout: 30_000 });
  if (v.failed) {
    const why = v.code === 'ENOENT' ? 'not found' : `failed (${v.stderr || v.exitCode})`;
    throw new MigralabError('PREREQ', `${gcc} ${why}: the guest programs are compiled on this host: ${GCC_PACKAGES}`);
  }
  const lib = await execa(gcc, ['-print-file-name=libc.a'], { reject: false, timeout: 30_000 });
  const libPath = lib.stdout.trim();
  // gcc prints the bare name back when it has no such file in its search path
  if (lib.failed || !path.isAbsolute(libPath) || !(await exists(libPath))) {
    throw new MigralabError('PREREQ', `${gcc} has no static C library (libc.a) for -static: ${GCC_PACKAGES}`);
  }
  return { gcc, version: v.stdout, libcA: { path: libPath, data: await readFile(libPath) } };
}

async function compileProgram(tc: Toolchain, name: GuestProgram, source: string, outDir: string): Promise<Buffer> {
  const out = path.join(outDir, name);
  const r = await execa(tc.gcc, [...GCC_FLAGS, '-o', out, source], { reject: false, timeout: 120_000, all: true });
  if (r.failed) {
    const log = String(r.all ?? '').trim().split('\n').slice(-5).join(' | ');
    const missing = /cannot find -l|No such file or directory|fatal error: .*\.h/.test(log);
    throw new MigralabError(
      missing ? 'PREREQ' : 'LAB',
      `compiling ${source} with ${tc.gcc} failed${missing ? ` (${GCC_PACKAGES})` : ''}: ${log || `exit ${r.exitCode}`}`,
    );
  }
  const data = await readFile(out);
  if (isDynamicElf(data)) throw new MigralabError('PREREQ', `${tc.gcc} -static produced a dynamic ${name}: ${GCC_PACKAGES}`);
  return data;
}

async function loadModule(file: string): Promise<Buffer> {
  if (file.endsWith('.ko')) return readFile(file);
  if (file.endsWith('.ko.gz')) return gunzipSync(await readFile(file));
  const tool = file.endsWith('.ko.xz') ? 'xz' : file.endsWith('.ko.zst') ? 'zstd' : undefined;
  if (!tool) throw new MigralabError('PREREQ', `unsupported kernel module file ${file}`);
  const r = await execa(tool, ['-dc', file], { encoding: 'buffer', reject: false, timeout: 60_000 });
  if (r.failed) {
    throw new MigralabError('PREREQ', `${tool} -dc ${file} failed${r.code === 'ENOENT' ? `: install ${tool}` : ''}`);
  }
  return Buffer.from(r.stdout);
}

/** Removes temp dirs left by builds whose process is gone (a killed build). */
async function sweepStaleTemps(cacheDir: string): Promise<void> {
  for (const name of await readdir(cacheDir)) {
    const m = /^\.tmp-(\d+)-/.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) await rm(path.join(cacheDir, name), { recursive: true, force: true });
  }
}

export async function buildGuestImage(opts: BuildOptions): Promise<GuestImage> {
  const progress = opts.onProgress ?? (() => {});
  const { kernel, version } = await findKernel(opts);
  const modDir = path.join(opts.modulesRoot ?? '/lib/modules', version);
  let depText: string;
  try {
    depText = await readFile(path.join(modDir, 'modules.dep'), 'utf8');
  } catch {
    throw new MigralabError('PREREQ', `${modDir}/modules.dep is missing: the modules of kernel ${version} are not installed (Debian package linux-image-amd64)`);
  }
  const builtin = parseModulesBuiltin(await readFile(path.join(modDir, 'modules.builtin'), 'utf8').catch(() => ''));
  const moduleFiles = resolveModules(parseModulesDep(depText), GUEST_MODULES, builtin);
  const busybox = await findBusybox(opts);
  const toolchain = await findToolchain(opts);
  const programs: { name: GuestProgram; source: string; text: Buffer }[] = [];
  for (const name of GUEST_PROGRAMS) {
    const source = path.join(GUEST_PROGRAM_DIR, `${name}.c`);
    programs.push({ name, source, text: await readFile(source) });
  }
  const init = initScript();
  const identity = identityScript();

  progress(`hashing kernel ${version}, busybox and ${moduleFiles.length} modules`);
  const h = createHash('sha256');
  const field = (label: string, data: Buffer | string) => {
    const b = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    h.update(`${label}\0${b.length}\0`);
    h.update(b);
  };
  field('format', IMAGE_FORMAT_VERSION);
  const kernelData = await readFile(kernel);
  field('kernel', kernelData);
  field('kernel-version', version);
  field('busybox', busybox.data);
  const modules: { rel: string; data: Buffer }[] = [];
  for (const rel of moduleFiles) {
    const data = await loadModule(path.join(modDir, rel));
    modules.push({ rel: rel.replace(/\.(xz|gz|zst)$/, ''), data });
    field(`module ${rel}`, data);
  }
  field('init', init);
  field('identity', identity);
  field('gcc-version', toolchain.version);
  field('gcc-flags', GCC_FLAGS.join(' '));
  field('libc.a', toolchain.libcA.data);
  for (const p of programs) field(`program ${p.name}`, p.text);
  for (const header of GUEST_PROGRAM_HEADERS) field(`program header ${header}`, await readFile(path.join(GUEST_PROGRAM_DIR, header)));
  const hash = h.digest('hex');

  const finalDir = path.join(opts.cacheDir, hash);
  const image = (cached: boolean): GuestImage => ({
    kernel: path.join(finalDir, 'vmlinuz'),
    initrd: path.join(finalDir, 'initrd.img'),
    hash,
    kernelVersion: version,
    cached,
  });
  if ((await exists(path.join(finalDir, 'initrd.img'))) && (await exists(path.join(finalDir, 'vmlinuz')))) {
    progress(`guest image ${hash.slice(0, 12)} is cached`);
    return image(true);
  }

  await mkdir(opts.cacheDir, { recursive: true });
  await sweepStaleTemps(opts.cacheDir);
  progress(`building guest image ${hash.slice(0, 12)} (kernel ${version})`);

  const tmp = await mkdtemp(path.join(opts.cacheDir, `.tmp-${process.pid}-`));
  await chmod(tmp, 0o755);
  let initrdBytes = 0;
  try {
    const binaries: { name: GuestProgram; data: Buffer }[] = [];
    const buildDir = path.join(tmp, 'programs');
    await mkdir(buildDir);
    for (const p of programs) {
      progress(`compiling ${p.name}.c`);
      binaries.push({ name: p.name, data: await compileProgram(toolchain, p.name, p.source, buildDir) });
    }
    await rm(buildDir, { recursive: true, force: true });

    const moduleRoot = `lib/modules/${version}`;
    const dirs = new Set<string>(['bin', 'dev', 'etc', 'etc/migralab', 'lib', 'mnt', 'proc', 'root', 'run', 'sys', 'tmp']);
    for (const m of modules) {
      const parts = `${moduleRoot}/${m.rel}`.split('/').slice(0, -1);
      for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
    }
    const entries: CpioEntry[] = [
      ...[...dirs].sort().map((d): CpioEntry => ({ type: 'dir', path: d, mode: d === 'tmp' ? 0o1777 : 0o755 })),
      { type: 'char', path: 'dev/console', major: 5, minor: 1, mode: 0o600 },
      { type: 'char', path: 'dev/null', major: 1, minor: 3, mode: 0o666 },
      { type: 'file', path: 'bin/busybox', data: busybox.data, mode: 0o755 },
      { type: 'symlink', path: 'bin/sh', target: 'busybox' },
      ...binaries.map((b): CpioEntry => ({ type: 'file', path: `bin/${b.name}`, data: b.data, mode: 0o755 })),
      { type: 'file', path: 'init', data: init, mode: 0o755 },
      { type: 'file', path: `bin/${IDENTITY_PROGRAM}`, data: identity, mode: 0o755 },
      ...modules.map((m): CpioEntry => ({ type: 'file', path: `${moduleRoot}/${m.rel}`, data: m.data, mode: 0o644 })),
      { type: 'file', path: MODULE_LIST_PATH.slice(1), data: modules.map((m) => `/${moduleRoot}/${m.rel}\n`).join('') },
      { type: 'file', path: 'etc/migralab/image', data: `${IMAGE_FORMAT_VERSION}\nkernel ${version}\nhash ${hash}\n` },
    ];
    const initrd = gzipSync(writeCpio(entries), { level: 6 });
    initrdBytes = initrd.length;

    await writeFile(path.join(tmp, 'vmlinuz'), kernelData); // the bytes that were hashed
    await writeFile(path.join(tmp, 'initrd.img'), initrd);
    await writeFile(
      path.join(tmp, 'manifest.json'),
      `${JSON.stringify({ format: IMAGE_FORMAT_VERSION, hash, kernelVersion: version, kernelSource: kernel, busybox: busybox.path, modules: moduleFiles, programs: { names: GUEST_PROGRAMS, gcc: toolchain.version.split('\n')[0], flags: GCC_FLAGS, libcA: toolchain.libcA.path } }, null, 2)}\n`,
    );
    try {
      await rename(tmp, finalDir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Another build of the same inputs won the race: its result is identical.
      if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await stat(finalDir).catch(() => undefined))) {
        await rm(tmp, { recursive: true, force: true });
        return image(true);
      }
      throw e;
    }
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  progress(`guest image ${hash.slice(0, 12)}: initrd ${(initrdBytes / 1024 / 1024).toFixed(1)} MiB`);
  return image(false);
}
