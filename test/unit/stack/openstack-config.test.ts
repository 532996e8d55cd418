import { describe, it, expect } from 'vitest';
import { databaseSql, keystoneConf, mariadbArgs, placementConf, rabbitmqConf, rabbitmqEnv, transportUrl, uwsgiArgs, type StackContext } from '../../../lab/stack/openstack/config.ts';
import { newSecrets } from '../../../lab/stack/openstack/stack.ts';
import { RELAY_JS, relaySocket } from '../../../lab/stack/openstack/api.ts';

const ctx: StackContext = { controller: 'controller', controllerAddress: '10.77.0.11', secrets: newSecrets() };

describe('openstack profile configuration', () => {
  it('each lab has its own passwords, one per service and database', () => {
    const a = newSecrets();
    const b = newSecrets();
    expect(a.admin).not.toBe(b.admin);
    expect(a.db.nova).not.toBe(a.user.nova);
    expect(a.admin).toMatch(/^[0-9a-f]{24}$/);
  });

  it('creates every database nova, keystone, glance, neutron and placement use, each granted to its own user only', () => {
    const sql = databaseSql(ctx.secrets);
    for (const db of ['keystone', 'placement', 'glance', 'neutron', 'nova_api', 'nova', 'nova_cell0']) expect(sql).toContain(`CREATE DATABASE IF NOT EXISTS ${db};`);
    expect(sql).toContain(`GRANT ALL PRIVILEGES ON nova_cell0.* TO 'nova'@'%';`);
    expect(sql).toContain(`CREATE USER IF NOT EXISTS 'glance'@'%' IDENTIFIED BY '${ctx.secrets.db.glance}';`);
    expect(databaseSql({ ...ctx.secrets, db: { ...ctx.secrets.db, nova: "it's" } })).toContain(`IDENTIFIED BY 'it\\'s'`);
  });

  it('MariaDB and RabbitMQ listen on the controller\'s lab address only', () => {
    const args = mariadbArgs({ datadir: '/d', socket: '/s', address: '10.77.0.11', pidFile: '/p', logError: '/e' });
    expect(args[0]).toBe('--no-defaults');
    expect(args).toContain('--bind-address=10.77.0.11');
    expect(rabbitmqConf(ctx)).toContain('listeners.tcp.1 = 10.77.0.11:5672');
    const env = rabbitmqEnv(ctx, '/r');
    expect(env.ERL_EPMD_ADDRESS).toBe('10.77.0.11');
    expect(env.RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS).toBe('-kernel inet_dist_use_interface {10,77,0,11}');
    expect(env.RABBITMQ_NODENAME).toBe('rabbit@controller');
    expect(transportUrl(ctx)).toBe(`rabbit://openstack:${ctx.secrets.rabbit}@controller:5672/`);
  });

  it('keystone and placement reach their databases by the controller\'s name; placement authenticates as its own user', () => {
    expect(keystoneConf(ctx)).toContain(`connection = mysql+pymysql://keystone:${ctx.secrets.db.keystone}@controller/keystone`);
    expect(keystoneConf(ctx)).toMatch(/\[token\]\nprovider = fernet/);
    const p = placementConf(ctx);
    expect(p).toContain(`[placement_database]\nconnection = mysql+pymysql://placement:${ctx.secrets.db.placement}@controller/placement`);
    expect(p).toContain(`username = placement\npassword = ${ctx.secrets.user.placement}`);
    expect(p).not.toContain('memcached_servers');
  });

  it('uwsgi closes every connection, stops on SIGTERM and takes its workers with it', () => {
    const a = uwsgiArgs({ wsgiFile: '/usr/bin/keystone-wsgi-public', address: '10.77.0.11', port: 5000 });
    expect(a.join(' ')).toContain('--http-socket 10.77.0.11:5000');
    expect(a.join(' ')).toContain('--add-header Connection: close');
    expect(a).toContain('--die-on-term');
    expect(a).toContain('--no-orphans');
  });

  it('the API relay is one program over <socket>=<host>:<port> pairs', () => {
    expect(relaySocket('/x/api', 8774)).toBe('/x/api/8774.sock');
    expect(() => new Function(RELAY_JS)).not.toThrow();
  });
});

describe('nova\'s vfat config drive on a kernel without vfat (the mount and umount wrappers)', () => {
  it('the loop mount of a vfat image leaves a directory; its umount copies that directory into the image, as a vfat file system', async () => {
    const { mkdtempSync, writeFileSync, mkdirSync, existsSync, readdirSync } = await import('node:fs');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { execa } = await import('execa');
    const { vfatMountWrappers } = await import('../../../lab/stack/openstack/config.ts');
    const d = mkdtempSync(join(tmpdir(), 'mlvfat-'));
    const w = vfatMountWrappers({ realMount: '/usr/bin/mount', realUmount: '/usr/bin/umount', stateDir: join(d, 'state') });
    writeFileSync(join(d, 'mount'), w.mount, { mode: 0o755 });
    writeFileSync(join(d, 'umount'), w.umount, { mode: 0o755 });
    const image = join(d, 'disk.config');
    await execa('truncate', ['-s', '4M', image]);
    await execa('mkfs.vfat', ['-n', 'config-2', image]);
    const dir = join(d, 'mnt');
    mkdirSync(dir);
    // nova's call, exactly: mount -o loop,uid=0,gid=0 IMAGE DIR
    const m = await execa(join(d, 'mount'), ['-o', 'loop,uid=0,gid=0', image, dir], { reject: false, all: true });
    expect(m.exitCode, m.all).toBe(0);
    expect(m.all).toBe(''); // nova treats any stderr as a failed mount
    mkdirSync(join(dir, 'openstack', 'latest'), { recursive: true });
    writeFileSync(join(dir, 'openstack', 'latest', 'meta_data.json'), '{"uuid":"u-1"}');
    const u = await execa(join(d, 'umount'), [dir], { reject: false, all: true });
    expect(u.exitCode, u.all).toBe(0);
    expect(readdirSync(join(d, 'state'))).toEqual([]);
    const t = await execa('mtype', ['-i', image, '::/openstack/latest/meta_data.json'], { env: { MTOOLS_SKIP_CHECK: '1' } });
    expect(t.stdout).toBe('{"uuid":"u-1"}');
    expect((await execa('blkid', ['-o', 'value', '-s', 'LABEL', image])).stdout).toBe('config-2');
    // anything else goes to the real programs: an unknown mount point fails as mount would
    expect((await execa(join(d, 'umount'), [join(d, 'nowhere')], { reject: false })).exitCode).not.toBe(0);
    expect(existsSync(image)).toBe(true);
    await execa('rm', ['-rf', d]);
  });
});

describe('a service\'s workers are part of the lab, not strays', () => {
  it('descendsFrom follows the parent chain', async () => {
    const { spawn } = await import('node:child_process');
    const { descendsFrom } = await import('../../../lab/exec/proc.ts');
    const parent = spawn('sh', ['-c', 'sleep 30 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const child = Number(await new Promise<string>((r) => parent.stdout!.once('data', (b: Buffer) => r(b.toString().trim()))));
    try {
      expect(descendsFrom(child, new Set([parent.pid!]))).toBe(true);
      expect(descendsFrom(child, new Set([process.pid]))).toBe(true);
      expect(descendsFrom(parent.pid!, new Set([child]))).toBe(false);
    } finally {
      process.kill(child, 'SIGKILL');
      parent.kill('SIGKILL');
    }
  });
});

describe('the database cache', () => {
  it('says so when it cannot be written, and leaves no temporary entry', async () => {
    const { databaseCache } = await import('../../../lab/stack/openstack/cache.ts');
    const { loadTopology } = await import('../../../lab/config/topology.ts');
    const { planLab } = await import('../../../lab/provision/plan.ts');
    const { existsSync } = await import('node:fs');
    const cache = await databaseCache(planLab(await loadTopology('test/fixtures/devstack.lab.yaml')));
    const failing = { run: async () => ({ exitCode: 2, stdout: '', stderr: 'mariadb-dump: Got error: 2002: Can\'t connect\nmore' }) } as never;
    const said: string[] = [];
    await cache.save('/nonexistent.sock', failing, newSecrets(), '/nonexistent', (m) => said.push(m));
    expect(said).toHaveLength(1);
    expect(said[0]).toMatch(/^openstack: the database cache was not written to .* \(mariadb-dump: Got error: 2002: Can't connect\); the next bring-up migrates every database again$/);
    expect(existsSync(`${cache.dir}.tmp-${process.pid}`)).toBe(false);
  });
});
