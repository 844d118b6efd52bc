"use strict";
// Original file: proto/runtime/v1/api.proto
Object.defineProperty(exports, "__esModule", { value: true });
exports.SupplementalGroupsPolicy = void 0;
exports.SupplementalGroupsPolicy = {
    Merge: 'Merge',
    Strict: 'Strict',
};
//# sourceMappingURL=SupplementalGroupsPolicy.js.map