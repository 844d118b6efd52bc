"use strict";
// Original file: proto/runtime/v1/api.proto
Object.defineProperty(exports, "__esModule", { value: true });
exports.NamespaceMode = void 0;
exports.NamespaceMode = {
    POD: 'POD',
    CONTAINER: 'CONTAINER',
    NODE: 'NODE',
    TARGET: 'TARGET',
};
//# sourceMappingURL=NamespaceMode.js.map