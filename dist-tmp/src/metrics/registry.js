/**
 * The daemon's Prometheus registry. Every crisp metric is named crisp_<area>_<thing>_<unit>
 * (docs/metrics.md lists them); Node's default process metrics are registered as well.
 */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
export function createMetrics() {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const grpcRequests = new Counter({
        name: 'crisp_grpc_requests_total',
        help: 'CRI gRPC requests handled, by method and gRPC status code name.',
        labelNames: ['method', 'code'],
        registers: [registry],
    });
    const grpcDuration = new Histogram({
        name: 'crisp_grpc_request_duration_seconds',
        help: 'Time to answer a CRI gRPC request, by method.',
        labelNames: ['method'],
        buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
        registers: [registry],
    });
    return { registry, grpcRequests, grpcDuration };
}
//# sourceMappingURL=registry.js.map