export {
  type CheckReport,
  type CliIo,
  type DiscoveryReport,
  type EndpointReport,
  type ErrorReport,
  ExitCode,
  run,
  USAGE,
} from './cli.js';
export type { TokenReport } from './report.js';
export { type Diagnosis, diagnose } from './troubleshoot.js';
