/* Layering rules from docs/architecture.md: a layer imports only the layers below it, and no cycles. */
const layer = (from, allowed) => ({
  name: `layer-${from}`,
  comment: `src/${from} may import only: ${allowed.join(', ') || 'nothing internal'}`,
  severity: 'error',
  from: { path: `^src/${from}` },
  to: {
    path: '^src/',
    pathNot: [`^src/${from}`, ...allowed.map((a) => `^src/${a}`)],
  },
});

module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', from: {}, to: { circular: true } },
    layer('cri/', [
      'sandbox/',
      'container/',
      'image/',
      'streaming/',
      'errors',
      'log/',
      'metrics/',
      'generated/',
      'util/',
    ]),
    layer('admin/', ['image/', 'errors', 'log/', 'util/']),
    layer('streaming/', ['container/', 'sandbox/', 'errors', 'log/', 'util/']),
    layer('sandbox/', ['container/', 'netns/', 'image/', 'store/', 'errors', 'log/', 'util/']),
    layer('container/', ['oci/', 'image/', 'store/', 'errors', 'log/', 'util/']),
    layer('image/', ['store/', 'errors', 'log/', 'util/']),
    layer('oci/', ['errors', 'log/', 'util/']),
    layer('netns/', ['errors', 'log/', 'util/']),
    layer('store/', ['errors', 'util/']),
    layer('metrics/', ['errors', 'log/', 'util/']),
    layer('errors', []),
    layer('util/', []),
    layer('log/', []),
    layer('config/', []),
    {
      name: 'grpc-only-in-cri',
      comment: 'Only src/cri (and the e2e harness) may use @grpc/* and src/generated',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/cri/', '^src/generated/'] },
      to: { path: ['^src/generated/', '@grpc/'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '\\.test\\.ts$' },
  },
};
