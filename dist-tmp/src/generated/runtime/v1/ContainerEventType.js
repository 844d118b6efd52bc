"use strict";
// Original file: proto/runtime/v1/api.proto
Object.defineProperty(exports, "__esModule", { value: true });
exports.ContainerEventType = void 0;
exports.ContainerEventType = {
    CONTAINER_CREATED_EVENT: 'CONTAINER_CREATED_EVENT',
    CONTAINER_STARTED_EVENT: 'CONTAINER_STARTED_EVENT',
    CONTAINER_STOPPED_EVENT: 'CONTAINER_STOPPED_EVENT',
    CONTAINER_DELETED_EVENT: 'CONTAINER_DELETED_EVENT',
};
//# sourceMappingURL=ContainerEventType.js.map