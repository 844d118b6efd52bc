"use strict";
// Original file: proto/runtime/v1/api.proto
Object.defineProperty(exports, "__esModule", { value: true });
exports.ContainerState = void 0;
exports.ContainerState = {
    CONTAINER_CREATED: 'CONTAINER_CREATED',
    CONTAINER_RUNNING: 'CONTAINER_RUNNING',
    CONTAINER_EXITED: 'CONTAINER_EXITED',
    CONTAINER_UNKNOWN: 'CONTAINER_UNKNOWN',
};
//# sourceMappingURL=ContainerState.js.map