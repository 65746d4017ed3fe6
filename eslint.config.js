// Lint rules: no floating promises, no `any`, and the layering of the tree (which folder may
// import which), so that the structure described in README.md cannot drift silently.
import js from '@eslint/js';
import unicorn from 'eslint-plugin-unicorn';
import tseslint from 'typescript-eslint';

const NO_ONNXRUNTIME = {
  group: ['onnxruntime-node', 'onnxruntime-node/*'],
  message: 'Only src/model/onnx-session.ts imports onnxruntime-node; run models through OnnxSession.',
};
const NO_OFFLINE_PIPELINE = {
  group: ['**/ramps/**', '**/ramps'],
  message: 'The runtime must not import the offline pipeline (ramps/); shared code belongs in src/model/.',
};
const NO_RUNTIME_ABOVE_MODEL = {
  group: [
    '**/engine/**',
    '**/data-plane/**',
    '**/http/**',
    '**/grpc/**',
    '**/cli/**',
    '**/config/**',
    '**/server.js',
    '**/metrics.js',
  ],
  message:
    'src/model/ is the lowest layer of src/: it must not import the engine, data plane, transports, CLI or config.',
};

export default tseslint.config(
  { ignores: ['tmp/**', 'dist/**', 'node_modules/**', 'models/**', 'bin/**', 'coverage/**'] },
  js.configs.recommended,
  // The type-checked preset: rules that need the types (unsafe `any` flows, awaiting
  // non-promises, unnecessary assertions) catch what the plain preset cannot.
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
  },
  // Plain JavaScript files (this config, bin/) are not in a tsconfig project.
  { files: ['**/*.js', '**/*.mjs'], ...tseslint.configs.disableTypeChecked },
  {
    // File names are kebab-case, so an import path never depends on a file system's case rules.
    files: ['**/*.ts', '**/*.js', '**/*.mjs'],
    plugins: { unicorn },
    rules: { 'unicorn/filename-case': ['error', { case: 'kebabCase' }] },
  },
  {
    // prettier holds code at 120 columns but cannot break strings, template literals or comments;
    // 160 is the ceiling for those, so a long message is split into concatenated parts instead.
    files: ['**/*.ts', '**/*.js', '**/*.mjs'],
    rules: { 'max-len': ['error', { code: 160, ignoreUrls: true, ignoreRegExpLiterals: true }] },
  },
  {
    files: ['**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      // Passing on a caught value as it was caught is fine; creating a rejection from a non-Error is not.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  // Layering. `no-restricted-imports` options do not merge across config objects (the last
  // matching object wins), so each block below lists every restriction that applies to its files.
  //   tuner/      pure decision logic: no src/, no I/O, no onnxruntime
  //   src/model/  the model layer (ONNX files, manifest, splitting, sessions, tensors): the
  //               lowest layer of src/, shared by the offline pipeline and the runtime
  //   ramps/      the offline pipeline: may use src/model/, nothing else of src/
  //   src/        the runtime: never imports the offline pipeline, except the CLI (src/cli/),
  //               whose commands run it
  // onnxruntime-node is loaded in exactly one place, src/model/onnx-session.ts, so every model
  // run goes through one wrapper and tests can replace it.
  {
    files: ['**/*.ts'],
    ignores: ['src/model/onnx-session.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [NO_ONNXRUNTIME] }] },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/cli/**', 'src/model/onnx-session.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [NO_ONNXRUNTIME, NO_OFFLINE_PIPELINE] }] },
  },
  {
    files: ['src/model/**/*.ts'],
    ignores: ['src/model/onnx-session.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [NO_ONNXRUNTIME, NO_OFFLINE_PIPELINE, NO_RUNTIME_ABOVE_MODEL] }],
    },
  },
  {
    files: ['src/model/onnx-session.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [NO_OFFLINE_PIPELINE, NO_RUNTIME_ABOVE_MODEL] }] },
  },
  {
    // The dashboard page (browser code, bundled by esbuild): its globals are the DOM's, which its
    // tsconfig (lib DOM) declares for the type-aware rules (no-undef is off for TypeScript, as
    // typescript-eslint advises). It imports its own modules, uPlot, and of the server only the
    // types of protocol.ts, so the bundle never drags in Node code. build.ts runs in Node.
    files: ['src/dashboard/client/**/*.ts'],
    ignores: ['src/dashboard/client/build.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              regex: String.raw`^(?!\./[\w.-]+$|\.\./protocol\.js$|uplot(/|$))`,
              message: 'The dashboard page imports only its own modules, uplot, and ../protocol.js (types).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['ramps/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            NO_ONNXRUNTIME,
            {
              group: ['**/src/*', '!**/src/model'],
              message: 'ramps/ is the offline pipeline: of src/ it may import only the model layer (src/model/).',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['tuner/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            NO_ONNXRUNTIME,
            {
              group: ['**/src/**', '../src/*'],
              message: 'tuner/ is pure decision logic: it must not import the runtime (src/).',
            },
            { group: ['node:fs', 'node:fs/*', 'fs', 'node:net', 'node:http'], message: 'tuner/ is pure: no I/O.' },
          ],
        },
      ],
    },
  },
);
