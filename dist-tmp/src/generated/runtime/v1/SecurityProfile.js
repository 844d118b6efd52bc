"use strict";
// Original file: proto/runtime/v1/api.proto
Object.defineProperty(exports, "__esModule", { value: true });
exports._runtime_v1_SecurityProfile_ProfileType = void 0;
// Original file: proto/runtime/v1/api.proto
exports._runtime_v1_SecurityProfile_ProfileType = {
    RuntimeDefault: 'RuntimeDefault',
    Unconfined: 'Unconfined',
    Localhost: 'Localhost',
};
//# sourceMappingURL=SecurityProfile.js.map