import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fieldName } from '../config/load.ts';
import { MigralabError } from '../errors.ts';
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
    throw new MigralabError('CONFIG', `${file}: not a migralab results.json: (document): invalid JSON: ${(e as Error).message}`);
  }
  const parsed = resultsSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const more = parsed.error.issues.length > 1 ? ` (and ${parsed.error.issues.length - 1} more)` : '';
    throw new MigralabError('CONFIG', `${file}: not a migralab results.json: ${fieldName(issue.path) || '(document)'}: ${issue.message}${more}`);
  }
  return parsed.data;
}
