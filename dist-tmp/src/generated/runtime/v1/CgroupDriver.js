"use strict";
// Original file: proto/runtime/v1/api.proto
Object.defineProperty(exports, "__esModule", { value: true });
exports.CgroupDriver = void 0;
exports.CgroupDriver = {
    SYSTEMD: 'SYSTEMD',
    CGROUPFS: 'CGROUPFS',
};
//# sourceMappingURL=CgroupDriver.js.map