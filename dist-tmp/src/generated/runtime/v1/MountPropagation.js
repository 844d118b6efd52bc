"use strict";
// Original file: proto/runtime/v1/api.proto
Object.defineProperty(exports, "__esModule", { value: true });
exports.MountPropagation = void 0;
exports.MountPropagation = {
    PROPAGATION_PRIVATE: 'PROPAGATION_PRIVATE',
    PROPAGATION_HOST_TO_CONTAINER: 'PROPAGATION_HOST_TO_CONTAINER',
    PROPAGATION_BIDIRECTIONAL: 'PROPAGATION_BIDIRECTIONAL',
};
//# sourceMappingURL=MountPropagation.js.map