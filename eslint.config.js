// Lint rules the style guide asks for: no floating promises, no `any`, kebab-case files.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['tmp/**', 'dist/**', 'node_modules/**', 'models/**', 'bin/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // tuner/ is pure: no I/O, no runtime, no onnxruntime (STYLE.md §1).
    files: ['tuner/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [
          { group: ['**/src/**', '../src/*'], message: 'tuner/ must not import the runtime (src/).' },
          { group: ['onnxruntime-node', 'node:fs', 'node:fs/*', 'fs', 'node:net', 'node:http'], message: 'tuner/ is pure: no I/O.' },
        ],
      }],
    },
  },
  {
    // ramps/ is offline tooling: it may not depend on the serving runtime.
    files: ['ramps/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/src/**', '../src/*'], message: 'ramps/ must not import the runtime (src/).' }],
      }],
    },
  },
);
