"use strict";
// Original file: proto/runtime/v1/api.proto
Object.defineProperty(exports, "__esModule", { value: true });
exports.MetricType = void 0;
exports.MetricType = {
    COUNTER: 'COUNTER',
    GAUGE: 'GAUGE',
};
//# sourceMappingURL=MetricType.js.map