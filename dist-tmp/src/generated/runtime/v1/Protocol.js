"use strict";
// Original file: proto/runtime/v1/api.proto
Object.defineProperty(exports, "__esModule", { value: true });
exports.Protocol = void 0;
exports.Protocol = {
    TCP: 'TCP',
    UDP: 'UDP',
    SCTP: 'SCTP',
};
//# sourceMappingURL=Protocol.js.map