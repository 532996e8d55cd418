// moved to lab/results/reporters/index.ts (writeExports is writeReports with the default reporters): kept until callers switch
export { exportFiles, writeReports as writeExports } from '../results/reporters/index.ts';
