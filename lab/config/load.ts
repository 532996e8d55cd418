import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument, isNode, isMap, isScalar, type Document } from 'yaml';
import type { z } from 'zod';
import { ConfigError, MigralabError, type ConfigIssue } from '../errors.ts';

/** `nodes[1].roles` from ['nodes', 1, 'roles']. */
export function fieldName(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : `${out ? '.' : ''}${String(p)}`;
  return out;
}

/** Position of the deepest existing YAML node along `path` (a missing field points at its parent). */
function positionOf(doc: Document, lc: LineCounter, path: readonly PropertyKey[]): { line: number; col: number } {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as unknown[], true);
    if (isNode(node) && node.range) {
      const pos = lc.linePos(node.range[0]);
      return { line: pos.line, col: pos.col };
    }
  }
  return { line: 1, col: 1 };
}

/**
 * Parses YAML text and validates it against a zod schema. Syntax and schema
 * errors become one ConfigError naming file:line:col, the field and what was expected.
 */
export function parseConfig<S extends z.ZodType>(file: string, text: string, schema: S): z.output<S> {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => {
        const pos = lc.linePos(e.pos[0]);
        return { line: pos.line, col: pos.col, field: '', expected: `invalid YAML: ${e.message.split('\n')[0]}` };
      }),
    );
  }
  let data: unknown;
  try {
    // yaml's own limit on alias expansion (maxAliasCount) refuses an alias bomb here
    data = doc.toJS({ maxAliasCount: 100 }) ?? {};
  } catch (e) {
    throw new ConfigError(file, [{ line: 1, col: 1, field: '', expected: `invalid YAML: ${(e as Error).message} (aliases expand to too much)` }]);
  }
  const result = schema.safeParse(data);
  if (!result.success) {
    const issues: ConfigIssue[] = result.error.issues.map((issue) => {
      const path = issue.path as PropertyKey[];
      if (issue.code === 'unrecognized_keys' && issue.keys[0] !== undefined) {
        // Point at the unknown key itself, not at its value.
        const key = issue.keys[0];
        const keyPath = [...path, key];
        const parent = path.length === 0 ? doc.contents : doc.getIn(path as unknown[], true);
        const pair = isMap(parent) ? parent.items.find((p) => isScalar(p.key) && p.key.value === key) : undefined;
        const pos = pair && isScalar(pair.key) && pair.key.range ? lc.linePos(pair.key.range[0]) : positionOf(doc, lc, keyPath);
        return { line: pos.line, col: pos.col, field: fieldName(keyPath), expected: `unknown field "${key}"` };
      }
      const { line, col } = positionOf(doc, lc, path);
      return { line, col, field: fieldName(path), expected: issue.message };
    });
    issues.sort((a, b) => a.line - b.line || a.col - b.col);
    throw new ConfigError(file, issues);
  }
  return result.data;
}

/**
 * A ConfigError for a field that is valid on its own but wrong against something else (a node
 * the topology does not have), pointing at the field's line in the file.
 */
export async function fieldError(file: string, path: readonly PropertyKey[], expected: string): Promise<ConfigError> {
  let pos = { line: 1, col: 1 };
  try {
    const lc = new LineCounter();
    pos = positionOf(parseDocument(await readFile(file, 'utf8'), { lineCounter: lc }), lc, path);
  } catch {
    /* the file was read a moment ago; without it the error points at line 1 */
  }
  return new ConfigError(file, [{ ...pos, field: fieldName(path), expected }]);
}

export async function loadConfigFile<S extends z.ZodType>(file: string, schema: S): Promise<z.output<S>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new MigralabError('CONFIG', `${file}: cannot read (${code === 'ENOENT' ? 'no such file' : code})`);
  }
  return parseConfig(file, text, schema);
}
