/**
 * Which QEMU runs the guests: the system's, one migralab unpacks from Debian's own
 * packages into its cache (`apt-get download` + `dpkg-deb -x`, with its own firmware and
 * module directories), or a path to any `qemu-system-x86_64` (a user's own build). Both
 * sides of a migration use the same build; each iteration records it.
 *
 *   system         qemu-system-x86_64 from PATH (what scripts/setup.sh installed)
 *   debian-7.2     Debian's 7.2 packages (qemu-system-x86, -common, -data, qemu-block-extra,
 *                  seabios, ipxe-qemu) of the suite that has them, unpacked into the cache
 *   /path/to/qemu-system-x86_64 [firmware dir]   a build of your own
 */
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { MigralabError } from '../errors.ts';
import { run } from '../exec/run.ts';

/** As a scenario names it: `system`, `debian-<major.minor>`, or a binary (with its firmware directory). */
export const qemuBuildSchema = z.union(
  [
    z.literal('system'),
    z.string().regex(/^debian-\d+\.\d+$/, { error: 'expected system, debian-<version> (e.g. debian-7.2) or an absolute path' }),
    z.string().regex(/^\//, { error: 'expected system, debian-<version> (e.g. debian-7.2) or an absolute path' }),
    z.strictObject({ binary: z.string().regex(/^\//, { error: 'expected an absolute path' }), firmware: z.string().regex(/^\//, { error: 'expected an absolute path' }).optional() }),
  ],
  { error: 'expected system, debian-<version> (e.g. debian-7.2), an absolute path to qemu-system-x86_64, or { binary, firmware }' },
);
export type QemuBuildSpec = z.output<typeof qemuBuildSchema>;

/** A build ready to run: argv prefix and extra arguments, and what it is. */
export interface QemuBuild {
  /** The spec as written (label in results and cells). */
  id: string;
  binary: string;
  /** -L directories (firmware), in order; empty: the binary's own default. */
  firmwareDirs: string[];
  /** QEMU_MODULE_DIR for its block-nfs / accel modules; undefined: the binary's own. */
  moduleDir?: string;
  /** `qemu-system-x86_64 --version`: e.g. 10.0.2 */
  version: string;
  /** The first line of --version, with the package. */
  versionText: string;
}

export function buildLabel(spec: QemuBuildSpec): string {
  return typeof spec === 'string' ? spec : spec.binary;
}

/** The command that starts this build: `env QEMU_MODULE_DIR=… binary -L …` (transport-agnostic argv). */
export function buildArgvPrefix(b: Pick<QemuBuild, 'binary' | 'firmwareDirs' | 'moduleDir'>): string[] {
  const env = b.moduleDir ? ['env', `QEMU_MODULE_DIR=${b.moduleDir}`] : [];
  return [...env, b.binary, ...b.firmwareDirs.flatMap((d) => ['-L', d])];
}

/** `QEMU emulator version 7.2.22 (Debian ...)` → 7.2.22 */
export function parseQemuVersion(text: string): string | undefined {
  return /version\s+(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1];
}

/** 10.0.2 ≥ 9.0 */
export function versionAtLeast(version: string, major: number, minor = 0): boolean {
  const [a = 0, b = 0] = version.split('.').map(Number);
  return a > major || (a === major && b >= minor);
}

async function versionOf(prefix: string[]): Promise<{ version: string; versionText: string }> {
  const r = await run([...prefix, '--version'], { check: false, timeoutMs: 20_000 });
  const versionText = r.stdout.split('\n')[0] ?? '';
  const version = parseQemuVersion(versionText);
  if (r.exitCode !== 0 || !version) throw new MigralabError('PREREQ', `${prefix.join(' ')} --version failed: ${(r.stderr || r.stdout).trim() || `exit ${r.exitCode}`}`);
  return { version, versionText };
}

/** One line of `apt-cache madison`: package | version | source (…suite/component arch Packages). */
export interface MadisonLine {
  pkg: string;
  version: string;
  suite: string;
}

export function parseMadison(text: string): MadisonLine[] {
  const out: MadisonLine[] = [];
  for (const line of text.split('\n')) {
    const parts = line.split('|').map((s) => s.trim());
    if (parts.length < 3) continue;
    const suite = /\s(\S+)\/\S+\s+\S+\s+Packages$/.exec(` ${parts[2]}`)?.[1] ?? parts[2]!;
    out.push({ pkg: parts[0]!, version: parts[1]!, suite });
  }
  return out;
}

/** The Debian packages a `debian-<version>` build is made of. */
export const DEBIAN_QEMU_PACKAGES = ['qemu-system-x86', 'qemu-system-common', 'qemu-system-data', 'qemu-block-extra'] as const;
export const DEBIAN_FIRMWARE_PACKAGES = ['seabios', 'ipxe-qemu'] as const;

/**
 * Versions to download for `debian-<want>` (pure): the newest qemu-system-x86 whose upstream
 * version is <want>, the QEMU packages of that suite at the same upstream version, and the
 * firmware of that suite.
 */
export function pickDebianVersions(lines: MadisonLine[], want: string): { suite: string; versions: Record<string, string> } | undefined {
  const upstream = (v: string) => v.replace(/^\d+:/, '');
  const x86 = lines.find((l) => l.pkg === 'qemu-system-x86' && upstream(l.version).startsWith(`${want}+`));
  if (!x86) return undefined;
  const versions: Record<string, string> = {};
  for (const pkg of DEBIAN_QEMU_PACKAGES) {
    const l = lines.find((x) => x.pkg === pkg && x.suite === x86.suite && upstream(x.version).startsWith(`${want}+`));
    if (!l) return undefined;
    versions[pkg] = l.version;
  }
  for (const pkg of DEBIAN_FIRMWARE_PACKAGES) {
    const l = lines.find((x) => x.pkg === pkg && x.suite === x86.suite) ?? lines.find((x) => x.pkg === pkg);
    if (!l) return undefined;
    versions[pkg] = l.version;
  }
  return { suite: x86.suite, versions };
}

/** Resolves a build: the system's at once; a Debian one from the cache, unpacked there first if needed. */
export async function resolveBuild(spec: QemuBuildSpec, cacheDir: string, progress: (m: string) => void = () => {}): Promise<QemuBuild> {
  const id = buildLabel(spec);
  if (spec === 'system') return { id, binary: 'qemu-system-x86_64', firmwareDirs: [], ...(await versionOf(['qemu-system-x86_64'])) };
  if (typeof spec === 'object' || spec.startsWith('/')) {
    const binary = typeof spec === 'object' ? spec.binary : spec;
    if (!existsSync(binary)) throw new MigralabError('CONFIG', `QEMU build ${binary}: no such file`);
    const fw = typeof spec === 'object' ? spec.firmware : undefined;
    const firmwareDirs = fw ? [fw] : [];
    return { id, binary, firmwareDirs, ...(await versionOf([binary, ...firmwareDirs.flatMap((d) => ['-L', d])])) };
  }
  return debianBuild(spec.slice('debian-'.length), cacheDir, progress);
}

async function debianBuild(want: string, cacheDir: string, progress: (m: string) => void): Promise<QemuBuild> {
  const dir = join(cacheDir, `debian-${want}`);
  const root = join(dir, 'root');
  const done = join(dir, 'build.json');
  const fromRoot = (): Omit<QemuBuild, 'version' | 'versionText'> => ({
    id: `debian-${want}`,
    binary: join(root, 'usr/bin/qemu-system-x86_64'),
    firmwareDirs: [join(root, 'usr/share/qemu'), join(root, 'usr/share/seabios'), join(root, 'usr/lib/ipxe/qemu')],
    moduleDir: join(root, 'usr/lib/x86_64-linux-gnu/qemu'),
  });
  if (!existsSync(done)) {
    const madison = await run(['apt-cache', 'madison', ...DEBIAN_QEMU_PACKAGES, ...DEBIAN_FIRMWARE_PACKAGES], { check: false });
    const pick = pickDebianVersions(parseMadison(madison.stdout), want);
    if (!pick)
      throw new MigralabError('PREREQ', `QEMU build debian-${want}: no qemu-system-x86 ${want} in this machine's apt sources (apt-cache madison qemu-system-x86 lists what there is)`);
    progress(`qemu: unpacking Debian's QEMU ${want} (${pick.suite}) into ${dir}`);
    const tmp = `${dir}.tmp-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(join(tmp, 'debs'), { recursive: true });
    const specs = Object.entries(pick.versions).map(([p, v]) => `${p}=${v}`);
    // apt-get download as root warns that _apt cannot write here; harmless.
    const dl = await run(['sh', '-c', 'cd "$1" && shift && apt-get download -q "$@"', 'sh', join(tmp, 'debs'), ...specs], { check: false, timeoutMs: 300_000 });
    if (dl.exitCode !== 0) throw new MigralabError('PREREQ', `QEMU build debian-${want}: apt-get download ${specs.join(' ')} failed: ${dl.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    for (const deb of await readdir(join(tmp, 'debs'))) await run(['dpkg-deb', '-x', join(tmp, 'debs', deb), join(tmp, 'root')]);
    await rm(join(tmp, 'debs'), { recursive: true });
    await writeFile(join(tmp, 'build.json'), `${JSON.stringify({ want, suite: pick.suite, packages: pick.versions }, null, 2)}\n`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dirname(dir), { recursive: true });
    await rename(tmp, dir);
  }
  const b = fromRoot();
  const info = JSON.parse(await readFile(done, 'utf8')) as { packages: Record<string, string> };
  const v = await versionOf(buildArgvPrefix(b));
  return { ...b, ...v, versionText: `${v.versionText} [unpacked by migralab: ${Object.entries(info.packages).map(([p, x]) => `${p} ${x}`).join(', ')}]` };
}

/** Whether a Debian build is already unpacked in the cache (tests use it to decide what they can run). */
export function debianBuildCached(want: string, cacheDir: string): boolean {
  return existsSync(join(resolve(cacheDir), `debian-${want}`, 'build.json'));
}
