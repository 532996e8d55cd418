// moved to lab/results/reporters/console.ts: kept until callers switch
export { consoleReporter, iterationLine, summaryTable } from '../results/reporters/console.ts';
