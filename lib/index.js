// The package's entry for other projects (`import { startLab } from 'migralab'`): migralab is
// TypeScript, loaded through tsx in a namespace of its own, so the importing project's own
// module loading is left as it is. Types: dist/types/lab/api.d.ts (npm pack makes them).
import { register } from 'tsx/esm/api';

const tsx = register({ namespace: 'migralab' });
const api = await tsx.import('../lab/api.ts', import.meta.url);

export const { startLab, Lab, Guest, MigralabError, DEFAULT_TOPOLOGY } = api;
