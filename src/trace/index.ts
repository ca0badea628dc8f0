// The public surface of the MoE-internals tools: trace types, statistics and pictures.
export type { RoutingTrace, TraceOptions, RoutingTraceShape } from './types.js';
export { routingStats, coactivationPairs, type RoutingStats, type LayerRoutingStats, type TokenRouting } from './stats.js';
export {
  routesSvg,
  routesHtml,
  loadHeatmapSvg,
  top1GridSvg,
  coactivationSvg,
  tokenLabel,
  type SvgPicture,
  type RoutesPicturesOptions,
  type RoutesHtmlOptions,
  type Top1GridOptions,
} from './svg.js';
export { domainSpecialization, specializationSvg, type LabelledTrace, type LayerSpecialization, type DomainSpecialization } from './domains.js';
