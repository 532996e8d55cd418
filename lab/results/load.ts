import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fieldName, parseConfig } from '../config/load.ts';
import { ConfigError, MigralabError } from '../errors.ts';
import { resultsSchema, type Results } from './schema.ts';

/** Reads a results directory (its results.json) or a results.json file. */
export async function loadResults(path: string): Promise<Results> {
  let file = path;
  try {
    if ((await stat(path)).isDirectory()) file = join(path, 'results.json');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new MigralabError('CONFIG', `${path}: cannot read (${code === 'ENOENT' ? 'no such file or directory' : code})`);
  }
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new MigralabError('CONFIG', `${file}: cannot read (${code === 'ENOENT' ? 'no results.json there' : code})`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw located(file, text, `invalid JSON: ${(e as Error).message}`);
  }
  const parsed = resultsSchema.safeParse(data);
  if (!parsed.success) {
    // The slow path, only for a bad file: JSON is YAML, so the YAML parser can say where each bad field is.
    try {
      parseConfig(file, text, resultsSchema);
    } catch (e) {
      if (e instanceof ConfigError) {
        // Another kind of file: its schema field says so, and the rest would only be noise.
        const wrongKind = e.issues.filter((i) => i.field === 'schema');
        const shown = (wrongKind.length ? wrongKind : e.issues).slice(0, 5);
        const more = !wrongKind.length && e.issues.length > shown.length ? [{ ...shown.at(-1)!, expected: `(and ${e.issues.length - shown.length} more)` }] : [];
        throw new ConfigError(file, [...shown.map((i) => ({ ...i, expected: `not a migralab results.json: ${i.expected}` })), ...more]);
      }
      throw e;
    }
    const issue = parsed.error.issues[0]!;
    throw new MigralabError('CONFIG', `${file}: not a migralab results.json: ${fieldName(issue.path) || '(document)'}: ${issue.message}`);
  }
  return parsed.data;
}

/** A JSON syntax error at its line and column (Node names the position: "at position N" or "(line L column C)"). */
function located(file: string, text: string, message: string): ConfigError {
  const lc = /line (\d+) column (\d+)/.exec(message);
  const pos = /position (\d+)/.exec(message);
  let line = 1;
  let col = 1;
  if (lc) [line, col] = [Number(lc[1]), Number(lc[2])];
  else if (pos) {
    const before = text.slice(0, Number(pos[1])).split('\n');
    [line, col] = [before.length, before.at(-1)!.length + 1];
  }
  return new ConfigError(file, [{ line, col, field: '', expected: `not a migralab results.json: ${message}` }]);
}
