"use strict";
// Original file: proto/runtime/v1/api.proto
Object.defineProperty(exports, "__esModule", { value: true });
//# sourceMappingURL=ListContainersResponse.js.map