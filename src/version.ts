export const CRISP_VERSION = '0.1.0';
