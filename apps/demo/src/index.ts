export {
  AGENT_BIN,
  COORDINATOR_BIN,
  LocalFederation,
  type LocalFederationOptions,
  type MetricRecord,
  type RoundRecord,
} from './local-federation';
