/**
 * The OpenStack APIs of a lab, from this host: the services listen inside the controller's
 * network namespace only, so a small relay started there (one Node process, a daemon of the
 * lab) listens on Unix sockets in the lab's directory, one per API port, and connects each
 * accepted stream to the controller's lab address. Requests are plain HTTP/1.1 over those
 * sockets; one keystone token per client, taken again when it is refused.
 */
import http from 'node:http';
import { join } from 'node:path';
import { MigralabError } from '../../errors.ts';

/** The relay's program (node -e): argv are `<socket>=<host>:<port>` pairs. */
export const RELAY_JS = `const net=require('net'),fs=require('fs');for(const a of process.argv.slice(1)){const[sock,hp]=a.split('=');const[h,p]=hp.split(':');try{fs.unlinkSync(sock)}catch{}net.createServer(c=>{const s=net.connect(Number(p),h);c.pipe(s);s.pipe(c);s.on('error',()=>c.destroy());c.on('error',()=>s.destroy())}).listen(sock,()=>fs.chmodSync(sock,0o600))}process.on('SIGTERM',()=>process.exit(0))`;

export const relaySocket = (dir: string, port: number) => join(dir, `${port}.sock`);

export class OpenstackApiError extends MigralabError {
  constructor(
    readonly status: number,
    readonly method: string,
    readonly url: string,
    readonly body: string,
  ) {
    super('LAB', `${method} ${url}: HTTP ${status}${body ? `: ${body.slice(0, 400)}` : ''}`);
  }
}

export interface ApiResponse<T = unknown> {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: T;
}

export interface Credentials {
  username: string;
  password: string;
  project: string;
}

export class OpenstackApi {
  private token: string | undefined;
  private catalog: { type: string; endpoints: { interface: string; url: string }[] }[] = [];

  constructor(
    /** The relay's socket directory. */
    readonly socketDir: string,
    /** keystone as the services see it: http://controller:5000/v3 */
    readonly keystoneUrl: string,
    readonly credentials: Credentials,
  ) {}

  /** One HTTP request through the relay; JSON in and out. Throws OpenstackApiError unless 2xx (or `ok` says so). */
  async raw<T = unknown>(
    url: string,
    method: string,
    body?: unknown,
    opts: { token?: string | null; headers?: Record<string, string>; ok?: (status: number) => boolean; timeoutMs?: number } = {},
  ): Promise<ApiResponse<T>> {
    const u = new URL(url);
    const port = Number(u.port || 80);
    const data = body === undefined ? undefined : typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body);
    const headers: Record<string, string> = { Accept: 'application/json', Host: u.host, Connection: 'close', ...opts.headers };
    if (data !== undefined) {
      headers['Content-Type'] ??= 'application/json';
      headers['Content-Length'] = String(Buffer.byteLength(data));
    }
    if (opts.token) headers['X-Auth-Token'] = opts.token;
    const res = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; text: string }>((resolve, reject) => {
      const req = http.request({ socketPath: relaySocket(this.socketDir, port), method, path: u.pathname + u.search, headers }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c));
        r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, text: Buffer.concat(chunks).toString('utf8') }));
        r.on('error', reject);
      });
      req.setTimeout(opts.timeoutMs ?? 60_000, () => req.destroy(new Error(`no answer within ${opts.timeoutMs ?? 60_000} ms`)));
      req.on('error', (e) => reject(new MigralabError('LAB', `${method} ${url}: ${e.message}`)));
      if (data !== undefined) req.write(data);
      req.end();
    });
    const ok = opts.ok ?? ((s: number) => s >= 200 && s < 300);
    if (!ok(res.status)) throw new OpenstackApiError(res.status, method, url, res.text);
    let parsed: unknown = res.text;
    if (res.text && /json/.test(String(res.headers['content-type'] ?? ''))) parsed = JSON.parse(res.text);
    return { status: res.status, headers: res.headers, body: parsed as T };
  }

  /** A project-scoped token for the credentials, with the service catalog. */
  async authenticate(): Promise<string> {
    const c = this.credentials;
    const r = await this.raw<{ token: { catalog?: OpenstackApi['catalog'] } }>(
      `${this.keystoneUrl}/auth/tokens`,
      'POST',
      {
        auth: {
          identity: { methods: ['password'], password: { user: { name: c.username, domain: { id: 'default' }, password: c.password } } },
          scope: { project: { name: c.project, domain: { id: 'default' } } },
        },
      },
      { token: null },
    );
    this.token = String(r.headers['x-subject-token']);
    this.catalog = r.body.token.catalog ?? [];
    return this.token;
  }

  /** The public URL of a service type from the catalog (compute, image, network, placement, identity). */
  url(type: string): string {
    const s = this.catalog.find((e) => e.type === type);
    const e = s?.endpoints.find((x) => x.interface === 'public') ?? s?.endpoints[0];
    if (!e) throw new MigralabError('LAB', `keystone's catalog has no ${type} endpoint`);
    return e.url.replace(/\/$/, '');
  }

  /** A request to a service (by catalog type) with the token; once more with a new token on 401. */
  async call<T = unknown>(type: string, method: string, path: string, body?: unknown, opts: { headers?: Record<string, string>; ok?: (s: number) => boolean; timeoutMs?: number } = {}): Promise<ApiResponse<T>> {
    if (!this.token) await this.authenticate();
    const go = () => this.raw<T>(`${type === 'identity' ? this.keystoneUrl : this.url(type)}${path}`, method, body, { ...opts, token: this.token });
    try {
      return await go();
    } catch (e) {
      if (!(e instanceof OpenstackApiError) || e.status !== 401) throw e;
      await this.authenticate();
      return go();
    }
  }
}

