// The public surface of the MoE-internals tools: trace types, statistics and pictures.
export type { RoutingTrace, TraceOptions, RoutingTraceShape } from './types.js';
export { routingStats, coactivationPairs, type RoutingStats, type LayerRoutingStats, type TokenRouting } from './stats.js';
