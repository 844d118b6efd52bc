"use strict";
// Original file: proto/runtime/v1/api.proto
Object.defineProperty(exports, "__esModule", { value: true });
exports.PodSandboxState = void 0;
exports.PodSandboxState = {
    SANDBOX_READY: 'SANDBOX_READY',
    SANDBOX_NOTREADY: 'SANDBOX_NOTREADY',
};
//# sourceMappingURL=PodSandboxState.js.map